/**
 * Prometheus gauges of a mount's replication (in the process's registry, src/metrics.ts), published from the
 * region services' status by the mount daemon:
 *
 *   swiftfs_replica_lag_seconds{volume,replica}      age of the oldest commit the replica does not hold yet
 *   swiftfs_replica_lag_bytes{volume,replica}        bytes (segments and objects) still to copy to it
 *   swiftfs_replica_replicated_seq{volume,replica}   newest journal segment complete in the replica
 *   swiftfs_replica_up{volume,replica}               1 while replicating normally (syncing or caught up), else 0
 *   swiftfs_replica_fenced{volume,replica}           1 when the replicator stopped because the replica's owner
 *                                                    record changed (taken over or fenced there), else 0
 *
 * `replica` is REGION/CONTAINER. Series of replicas no longer reported are removed.
 */

import { FastGauge, registry } from '../metrics.js';
import type { Metric } from 'prom-client';
import type { ReplicationStatus } from './replicator.js';

function gauge(name: string, help: string): FastGauge {
  const g = new FastGauge(name, help, ['volume', 'replica']);
  registry.registerMetric(g as unknown as Metric);
  return g;
}

let gauges: { lagSeconds: FastGauge; lagBytes: FastGauge; replicatedSeq: FastGauge; up: FastGauge; fenced: FastGauge } | null = null;

function metrics(): NonNullable<typeof gauges> {
  gauges ??= {
    lagSeconds: gauge('swiftfs_replica_lag_seconds', 'Age of the oldest commit a replica does not hold yet (0 when caught up).'),
    lagBytes: gauge('swiftfs_replica_lag_bytes', 'Bytes (journal segments and the objects they need) still to copy to a replica.'),
    replicatedSeq: gauge('swiftfs_replica_replicated_seq', 'Newest journal segment complete in a replica.'),
    up: gauge('swiftfs_replica_up', '1 while replication to a replica works (syncing or caught up), else 0.'),
    fenced: gauge('swiftfs_replica_fenced', "1 when replication to a replica stopped because the replica's owner record changed (the volume was taken over or fenced there), else 0."),
  };
  return gauges;
}

/** Publishes replication statuses of one volume; returns a function that removes its series. */
export function replicationGauges(volume: string): { publish(statuses: readonly ReplicationStatus[]): void; remove(): void } {
  let shown = new Set<string>();
  const m = metrics();
  const drop = (replica: string): void => {
    for (const g of Object.values(m)) g.remove(volume, replica);
  };
  return {
    publish(statuses) {
      const now = new Set<string>();
      for (const st of statuses) {
        const replica = `${st.target.region}/${st.target.container}`;
        now.add(replica);
        m.lagSeconds.series(volume, replica).value = st.lagSeconds;
        m.lagBytes.series(volume, replica).value = st.lagBytes;
        m.replicatedSeq.series(volume, replica).value = st.replicatedSeq;
        m.up.series(volume, replica).value = st.state === 'syncing' || st.state === 'caught-up' ? 1 : 0;
        m.fenced.series(volume, replica).value = st.state === 'fenced' || st.state === 'taken-over' ? 1 : 0;
      }
      for (const replica of shown) if (!now.has(replica)) drop(replica);
      shown = now;
    },
    remove() {
      for (const replica of shown) drop(replica);
      shown = new Set();
    },
  };
}
