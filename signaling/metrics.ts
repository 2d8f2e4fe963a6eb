import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Counters behind `GET /metrics` (Prometheus text format 0.0.4). */
export class SignalingMetrics {
  readonly received = new Map<string, number>();
  readonly routedByType = new Map<string, number>();
  readonly rejections = new Map<string, number>();
  readonly upgradeRejections = new Map<string, number>();
  connectionsTotal = 0;
  relayedBytes = 0;
  capabilityUpdatesSent = 0;
  peerLeftSent = 0;
  readonly #loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.#loop.enable();
  }

  messageReceived(type: string): void {
    this.received.set(type, (this.received.get(type) ?? 0) + 1);
  }

  routed(type: string, bytes: number): void {
    this.routedByType.set(type, (this.routedByType.get(type) ?? 0) + 1);
    if (type === 'relay') this.relayedBytes += bytes;
  }

  rejected(reason: string): void {
    this.rejections.set(reason, (this.rejections.get(reason) ?? 0) + 1);
  }

  upgradeRejected(reason: string): void {
    this.upgradeRejections.set(reason, (this.upgradeRejections.get(reason) ?? 0) + 1);
  }

  stop(): void {
    this.#loop.disable();
  }

  render(gauges: {
    peersConnected: number;
    peersAnnounced: number;
    sessionsInGrace: number;
    sockets: number;
  }): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    const labelled = (label: string, map: Map<string, number>): [string, number][] =>
      [...map].map(([key, value]) => [`{${label}="${key.replace(/["\\\n]/g, '_')}"}`, value]);
    metric('handoff_peers_connected', 'gauge', 'Peers with an open signaling socket.', [
      ['', gauges.peersConnected],
    ]);
    metric('handoff_peers_announced', 'gauge', 'Connected peers that announced capabilities.', [
      ['', gauges.peersAnnounced],
    ]);
    metric('handoff_sessions_in_grace', 'gauge', 'Dropped sessions waiting for a resume.', [
      ['', gauges.sessionsInGrace],
    ]);
    metric('handoff_socket_actors', 'gauge', 'Running socket actors.', [['', gauges.sockets]]);
    metric('handoff_connections_total', 'counter', 'Sockets accepted since start.', [
      ['', this.connectionsTotal],
    ]);
    metric(
      'handoff_messages_received_total',
      'counter',
      'Valid client messages by type.',
      labelled('type', this.received),
    );
    metric(
      'handoff_messages_routed_total',
      'counter',
      'Messages forwarded to another peer, by type.',
      labelled('type', this.routedByType),
    );
    metric('handoff_relayed_bytes_total', 'counter', 'Bytes of relay frames forwarded.', [
      ['', this.relayedBytes],
    ]);
    metric('handoff_capability_updates_sent_total', 'counter', 'peer-capability-update frames sent.', [
      ['', this.capabilityUpdatesSent],
    ]);
    metric('handoff_peer_left_sent_total', 'counter', 'peer-left frames sent.', [['', this.peerLeftSent]]);
    metric(
      'handoff_rejections_total',
      'counter',
      'Refused client messages by reason.',
      labelled('reason', this.rejections),
    );
    metric(
      'handoff_upgrade_rejections_total',
      'counter',
      'Refused WebSocket upgrades by reason.',
      labelled('reason', this.upgradeRejections),
    );
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
    metric('handoff_event_loop_lag_seconds', 'gauge', 'Event-loop delay since start.', [
      ['{quantile="0.5"}', seconds(this.#loop.percentile(50))],
      ['{quantile="0.99"}', seconds(this.#loop.percentile(99))],
      ['{quantile="1"}', seconds(this.#loop.max)],
    ]);
    return `${lines.join('\n')}\n`;
  }
}
