/**
 * The Docker volume plugin protocol (HTTP+JSON "v1") as the engine really speaks it: endpoint paths, request and
 * response shapes, and the parsing and validation of what arrives on the wire.
 *
 * Facts this module is built on (see shared reference protocols.md §1):
 *  - every call is a POST; the engine sends no Content-Type, an EMPTY body on /Plugin.Activate, `{}\n` on List
 *    and Capabilities, and `"Opts": null` when `docker volume create` has no -o;
 *  - success is HTTP 200 with `Err` empty or absent; any non-empty `Err` is an error;
 *  - the mount `ID` is a random 64-hex string per container mount point, reused (same ID) by `docker cp`.
 *
 * Nothing here does I/O; the HTTP server (./server.ts) calls these functions and turns ProtocolError into
 * `{"Err": message}`.
 */

export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1+json';

export const Endpoint = {
  Activate: '/Plugin.Activate',
  Create: '/VolumeDriver.Create',
  Remove: '/VolumeDriver.Remove',
  Mount: '/VolumeDriver.Mount',
  Unmount: '/VolumeDriver.Unmount',
  Path: '/VolumeDriver.Path',
  Get: '/VolumeDriver.Get',
  List: '/VolumeDriver.List',
  Capabilities: '/VolumeDriver.Capabilities',
} as const;
export type Endpoint = (typeof Endpoint)[keyof typeof Endpoint];

/** A request the protocol layer rejects before the driver sees it (bad JSON, bad name, bad shape). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Longest volume name accepted: one path component (it names the mount directory) and a Swift container. */
export const MAX_VOLUME_NAME = 255;

/**
 * Checks a volume name. Docker's own rule for named volumes is `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; we accept the same
 * alphabet (one character is allowed too), which excludes `/`, `..` as a whole name, spaces and control
 * characters, and keeps every name usable as a directory name and as a Swift container name.
 * Returns the name; throws ProtocolError saying what is wrong.
 */
export function checkVolumeName(name: unknown): string {
  if (typeof name !== 'string') throw new ProtocolError('volume name is missing (expected a "Name" string)');
  if (name.length === 0) throw new ProtocolError('volume name is empty');
  if (name.length > MAX_VOLUME_NAME) {
    throw new ProtocolError(`volume name is too long (${name.length} characters; at most ${MAX_VOLUME_NAME})`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new ProtocolError(
      `invalid volume name ${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name)}: ` +
        'use letters, digits, "_", "." and "-", starting with a letter or digit',
    );
  }
  return name;
}

/** Checks a mount ID: the engine sends 64 hex characters; we accept any short token of safe characters. */
export function checkMountId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw new ProtocolError('mount ID is missing (expected an "ID" string)');
  if (id.length > 128 || !/^[A-Za-z0-9_.-]+$/.test(id)) throw new ProtocolError('invalid mount ID');
  return id;
}

/**
 * Parses a request body as JSON whatever its Content-Type. An empty body is `{}` (Activate sends none).
 * The result must be a JSON object.
 */
export function parseBody(raw: Buffer | string | undefined): Record<string, unknown> {
  const text = raw === undefined ? '' : typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError('request body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError('request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** Options of Create: a map of strings, or null/absent (no -o). Values must be strings. */
export function parseOpts(opts: unknown): Record<string, string> {
  if (opts === null || opts === undefined) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new ProtocolError('"Opts" must be an object of strings');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(opts as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new ProtocolError(`option ${JSON.stringify(key)} must be a string`);
    out[key] = value;
  }
  return out;
}

export interface CreateRequest {
  name: string;
  opts: Record<string, string>;
}
export interface NameRequest {
  name: string;
}
export interface MountRequest {
  name: string;
  id: string;
}

export function parseCreate(body: Record<string, unknown>): CreateRequest {
  return { name: checkVolumeName(body['Name']), opts: parseOpts(body['Opts']) };
}
export function parseName(body: Record<string, unknown>): NameRequest {
  return { name: checkVolumeName(body['Name']) };
}
export function parseMount(body: Record<string, unknown>): MountRequest {
  return { name: checkVolumeName(body['Name']), id: checkMountId(body['ID']) };
}

/** A volume as Get answers it. `Status` is free-form and shown by `docker volume inspect`. */
export interface WireVolume {
  Name: string;
  Mountpoint?: string;
  /** RFC 3339. */
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

export interface ActivateResponse {
  Implements: string[];
}
export interface ErrResponse {
  Err: string;
}
export interface MountpointResponse extends ErrResponse {
  Mountpoint: string;
}
export interface GetResponse extends ErrResponse {
  Volume: WireVolume;
}
export interface ListResponse extends ErrResponse {
  Volumes: WireVolume[];
}
export interface CapabilitiesResponse {
  Capabilities: { Scope: 'global' | 'local' };
}
