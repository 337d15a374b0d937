/**
 * Volume addresses: which container (or bucket) of which store holds a volume.
 *
 * Grammar:
 *
 *   VOLUME  = SCHEME "://" [ STORE "/" ] NAME     swift://pgdata   swift://dr/pgdata   s3://backups/pgdata
 *           | SCHEME "://" NAME "@" REGION        swift://pgdata@dr  (= swift://dr/pgdata)
 *           | NAME                                pgdata  (the container, on the default store)
 *   SCHEME  = "swift" | "s3" | "mem"              mem:// is an in-process store, for tests
 *   STORE   = a store name from the config, or the region of one store (swift://RegionTwo/pgdata),
 *             or STORE@REGION: a Keystone store in another region of its catalog (swift://os@RegionTwo/pgdata)
 *   REGION  = anything STORE may be (a store name, a store's region, STORE@REGION; with one Keystone store,
 *             a bare catalog region)
 *
 * "@" thus always says where: NAME@REGION is the volume NAME in region REGION, STORE@REGION the store STORE in
 * region REGION of its catalog. Each segment of a URL is percent-decoded after it is split (swift://my%20data is
 * the container "my data"; a container whose name holds "@" is written %40; a bare NAME is taken literally).
 * There is at most one "/" after the scheme, since container and bucket names never contain one; a trailing "/"
 * is an error, not ignored, so that "swift://dr/" is never read as the container "dr".
 *
 * Names: a Swift container is 1..256 bytes of UTF-8 without "/" or control characters, and not "." or "..";
 * an S3 bucket follows the DNS rules (3..63 of a-z 0-9 . -, starting and ending with a letter or digit, no
 * "..", not an IP address). A bare NAME is checked as a Swift name here and as a bucket by checkContainerName
 * once its store is known.
 */

import type { StoreKind } from './options.js';

export type VolumeScheme = 'swift' | 's3' | 'mem';

export interface VolumeRef {
  /** Undefined for a bare name: the kind of whichever store is chosen. */
  readonly scheme: VolumeScheme | undefined;
  /** Store name, region or STORE@REGION, when the address names one (NAME@REGION gives REGION here). */
  readonly store: string | undefined;
  readonly container: string;
}

export class VolumeUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VolumeUrlError';
  }
}

export const SCHEME_KIND: Readonly<Record<VolumeScheme, StoreKind>> = { swift: 'swift', s3: 's3', mem: 'memory' };
export const KIND_SCHEME: Readonly<Record<StoreKind, VolumeScheme>> = { swift: 'swift', s3: 's3', memory: 'mem' };

const STORE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f]/;

const MAX_SWIFT_CONTAINER_BYTES = 256;

/** Throws VolumeUrlError when `name` is not a valid Swift container name. */
export function checkSwiftContainerName(name: string): void {
  if (name === '') throw new VolumeUrlError('the container name is empty');
  if (name.includes('/')) throw new VolumeUrlError(`container name ${JSON.stringify(name)} must not contain "/"`);
  if (CONTROL_RE.test(name)) throw new VolumeUrlError(`container name ${JSON.stringify(name)} must not contain control characters`);
  if (name === '.' || name === '..') throw new VolumeUrlError(`container name ${JSON.stringify(name)} is not allowed`);
  if (!isWellFormed(name)) throw new VolumeUrlError(`container name ${JSON.stringify(name)} is not valid UTF-8`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_SWIFT_CONTAINER_BYTES) {
    throw new VolumeUrlError(`container name is ${bytes} bytes long; Swift allows at most ${MAX_SWIFT_CONTAINER_BYTES}`);
  }
}

/** Throws VolumeUrlError when `name` is not a valid (DNS-compatible) S3 bucket name. */
export function checkS3BucketName(name: string): void {
  const show = JSON.stringify(name);
  if (name === '') throw new VolumeUrlError('the bucket name is empty');
  if (name.length < 3 || name.length > 63) throw new VolumeUrlError(`bucket name ${show} must be 3 to 63 characters long`);
  if (!/^[a-z0-9.-]+$/.test(name)) throw new VolumeUrlError(`bucket name ${show} may only contain lowercase letters, digits, "." and "-"`);
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) throw new VolumeUrlError(`bucket name ${show} must start and end with a letter or digit`);
  if (name.includes('..')) throw new VolumeUrlError(`bucket name ${show} must not contain ".."`);
  if (name.includes('.-') || name.includes('-.')) throw new VolumeUrlError(`bucket name ${show} must not have "-" next to "."`);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) throw new VolumeUrlError(`bucket name ${show} must not look like an IP address`);
  if (name.startsWith('xn--') || name.startsWith('sthree-')) throw new VolumeUrlError(`bucket name ${show} must not start with "xn--" or "sthree-"`);
  if (name.endsWith('-s3alias') || name.endsWith('--ol-s3')) throw new VolumeUrlError(`bucket name ${show} must not end with "-s3alias" or "--ol-s3"`);
}

/** Checks a container name by the rules of the store kind that will hold it. */
export function checkContainerName(name: string, kind: StoreKind): void {
  if (kind === 's3') checkS3BucketName(name);
  else checkSwiftContainerName(name);
}

function isWellFormed(text: string): boolean {
  // Lone surrogates cannot be encoded as UTF-8 (String.prototype.isWellFormed is Node 20+ but not in ES2023 lib types).
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** Throws VolumeUrlError unless `ref` is a store reference: NAME or NAME@REGION (letters, digits, "._-"). */
function checkStoreRef(ref: string, what: string, show: string): void {
  const parts = ref.split('@');
  if (parts.length > 2 || parts.some((p) => !STORE_RE.test(p))) {
    throw new VolumeUrlError(`volume ${show}: ${what} ${JSON.stringify(ref)} must be a store name or region, or STORE@REGION (letters, digits, ".", "_" and "-")`);
  }
}

/** A store reference as written in a URL ("@" kept as is, everything else %-encoded). */
export function encodeStoreRef(ref: string): string {
  return encodeURIComponent(ref).replaceAll('%40', '@');
}

function decode(segment: string, what: string, input: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new VolumeUrlError(`volume ${JSON.stringify(input)}: the ${what} has a bad %-escape`);
  }
}

/** Parses a volume address (see the grammar above). Throws VolumeUrlError with a message for the user. */
export function parseVolumeUrl(input: string): VolumeRef {
  const show = JSON.stringify(input);
  if (input.trim() === '') throw new VolumeUrlError('the volume is empty: give swift://CONTAINER, s3://BUCKET or a container name');
  if (CONTROL_RE.test(input)) throw new VolumeUrlError(`volume ${show} contains control characters`);
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(input);
  if (!schemeMatch) {
    const container = input; // a bare name is taken literally (no %-decoding)
    if (container.includes('/')) {
      throw new VolumeUrlError(`volume ${show}: a container name cannot contain "/" (to name a store, write swift://STORE/CONTAINER)`);
    }
    checkSwiftContainerName(container);
    return { scheme: undefined, store: undefined, container };
  }
  const scheme = schemeMatch[1]!.toLowerCase();
  if (scheme !== 'swift' && scheme !== 's3' && scheme !== 'mem') {
    throw new VolumeUrlError(`volume ${show}: unknown scheme ${scheme}: (use swift://, s3:// or mem://)`);
  }
  const rest = schemeMatch[2]!;
  if (!rest.startsWith('//')) throw new VolumeUrlError(`volume ${show}: expected ${scheme}://CONTAINER or ${scheme}://STORE/CONTAINER`);
  const path = rest.slice(2);
  if (path.includes('?') || path.includes('#')) throw new VolumeUrlError(`volume ${show}: "?" and "#" are not allowed (write them as %3F and %23)`);
  const segments = path.split('/');
  if (segments.length > 2) {
    throw new VolumeUrlError(`volume ${show}: too many "/": expected ${scheme}://CONTAINER or ${scheme}://STORE/CONTAINER (container names cannot contain "/")`);
  }
  let store: string | undefined;
  let containerSegment: string;
  if (segments.length === 2) {
    store = decode(segments[0]!, 'store name', input);
    containerSegment = segments[1]!;
    if (store === '') throw new VolumeUrlError(`volume ${show}: the store name before "/" is empty`);
    checkStoreRef(store, 'store', show);
    if (containerSegment === '') throw new VolumeUrlError(`volume ${show}: the container name after "/" is empty (no trailing "/")`);
  } else {
    containerSegment = segments[0]!;
    if (containerSegment === '') throw new VolumeUrlError(`volume ${show}: the container name is empty`);
  }
  const at = containerSegment.indexOf('@');
  if (at >= 0) {
    // NAME@REGION: the volume NAME in region REGION (a literal "@" in a container name is written %40).
    if (store !== undefined) {
      throw new VolumeUrlError(`volume ${show}: the region is given twice (write ${scheme}://STORE/CONTAINER or ${scheme}://CONTAINER@REGION; an "@" in a container name is written %40)`);
    }
    const region = decode(containerSegment.slice(at + 1), 'region', input);
    containerSegment = containerSegment.slice(0, at);
    if (containerSegment === '') throw new VolumeUrlError(`volume ${show}: the container name before "@" is empty`);
    if (region === '') throw new VolumeUrlError(`volume ${show}: the region after "@" is empty (write ${scheme}://CONTAINER@REGION)`);
    checkStoreRef(region, 'region', show);
    store = region;
  }
  const container = decode(containerSegment, 'container name', input);
  try {
    if (scheme === 's3') checkS3BucketName(container);
    else checkSwiftContainerName(container);
  } catch (err) {
    if (err instanceof VolumeUrlError) throw new VolumeUrlError(`volume ${show}: ${err.message}`);
    throw err;
  }
  return { scheme, store, container };
}

/** The canonical text of a volume address (percent-encoding what needs it; the store before "/"). */
export function formatVolumeUrl(ref: VolumeRef): string {
  const container = encodeURIComponent(ref.container);
  if (ref.scheme === undefined) return ref.container;
  return `${ref.scheme}://${ref.store === undefined ? '' : `${encodeStoreRef(ref.store)}/`}${container}`;
}
