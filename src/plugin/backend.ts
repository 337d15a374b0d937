/**
 * What the volume plugin needs from the storage side, as one small interface (`VolumeBackend`), so that the
 * driver (./driver.ts) stays a thin adapter and can be tested with a fake backend.
 *
 * The real implementation (./store-backend.ts) maps a volume to a Swift container or S3 bucket through the
 * ObjectStore contract, formats it with the core, and reads labels and the core's owner record.
 *
 * Every method takes an AbortSignal: the driver gives each call a deadline so that no plugin call outlives the
 * engine's timeouts. Errors are Errors whose message is fit for the user (no credentials); a store failure keeps
 * the StoreError as `cause` so that the driver can tell "unreachable" from "refused".
 */

import type { VolumeLocation } from './state.js';

/** What Create resolved from the volume name and its -o options. */
export interface VolumeSpec {
  name: string;
  location: VolumeLocation;
  /** Canonical per-volume options (validated, defaults not filled in). */
  options: Record<string, string>;
}

/** Who holds a volume read-write (the core's owner record). */
export interface VolumeHolder {
  host: string;
  pid?: number;
  /** ISO time. */
  since?: string;
  /** ISO time of the last renewal. */
  renewedAt?: string;
  /** True while the holder's lease has not expired. */
  live: boolean;
}

/** A volume as the backend knows it. */
export interface BackendVolume {
  name: string;
  uuid: string;
  /** RFC 3339. */
  createdAt: string;
  location: VolumeLocation;
  /** Per-volume options recorded with the volume at creation (so every host mounts it the same way). */
  options: Record<string, string>;
  holder?: VolumeHolder;
  /** Set when a Remove started deleting this volume's container. */
  deleting?: boolean;
  bytesUsed?: number;
  objectCount?: number;
  /**
   * The container's part in the volume's regions (src/region/README.md): its home (also a volume that never had
   * replicas), a replica another region's writer keeps up to date, or an old home fenced by a relocation.
   */
  role?: 'home' | 'replica' | 'retired';
  /** Where a relocation moved the volume (read from the fence left in an old home; inspect only). */
  relocatedTo?: { region: string; container: string } | null;
  /** The volume's regions record (inspect only): its home and the replicas recorded. */
  regions?: { home: { region: string; container: string }; replicas: { region: string; container: string; mode: string }[] };
}

export interface VolumeBackend {
  /** 'global': a volume created on one host is seen by the others (the store is shared). */
  readonly scope: 'global' | 'local';
  /** Validates the -o options of Create and resolves where the volume lives. Throws a user error. */
  resolve(name: string, opts: Record<string, string>): VolumeSpec;
  /**
   * Creates the volume: its container (labelled with the volume's uuid and name) and the filesystem in it.
   * Idempotent: an existing swiftfs volume in that container is adopted as it is. Refuses a container that
   * holds other data.
   */
  create(spec: VolumeSpec, signal: AbortSignal): Promise<BackendVolume>;
  /** Finds a volume by its Docker name in the configured stores; null when there is none. */
  lookup(name: string, signal: AbortSignal): Promise<BackendVolume | null>;
  /** Reads a known volume again; null when its container no longer exists (deleted elsewhere). */
  inspect(location: VolumeLocation, signal: AbortSignal): Promise<BackendVolume | null>;
  /** Every swiftfs volume in the configured stores. */
  list(signal: AbortSignal): Promise<BackendVolume[]>;
  /** Marks the volume as being deleted (fast; other hosts stop listing it). */
  markDeleting(location: VolumeLocation, signal: AbortSignal): Promise<void>;
  /**
   * Where the volume of `known` (same UUID) lives now, when a relocation moved it: follows the fence left in the
   * old home, or — when the old home does not answer (a failover) — looks for the container holding its UUID
   * that another region took it over into. Null when it did not move (or its new home cannot be found here).
   */
  findHome(known: { name: string; uuid: string; location: VolumeLocation }, signal: AbortSignal): Promise<BackendVolume | null>;
  /** Deletes every object and then the container. Resumable; resolves when the container is gone. */
  destroy(location: VolumeLocation, signal: AbortSignal): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** The error a backend throws for an unreachable or failing store, so the driver can degrade gracefully. */
export function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (typeof e === 'object' && 'code' in e) {
      const code = (e as { code: unknown }).code;
      if (code === 'Unavailable' || code === 'Timeout' || code === 'Throttled' || code === 'Aborted') return true;
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH') return true;
    }
    if (e instanceof Error && e.name === 'DeadlineError') return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}
