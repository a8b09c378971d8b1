/**
 * Prometheus metrics on the relay's own registry (served at `/metrics`).
 * @module
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'

/** Creates the registry and every metric the relay updates. */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'parley_relay_' })
  const registers = [registry]
  return {
    registry,
    connections: new Gauge({
      name: 'parley_relay_connections',
      help: 'Open WebSocket connections',
      registers,
    }),
    authenticated: new Gauge({
      name: 'parley_relay_authenticated_connections',
      help: 'Open authenticated connections',
      registers,
    }),
    frames: new Counter({
      name: 'parley_relay_frames_total',
      help: 'Client frames received, by body type',
      labelNames: ['type'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'parley_relay_errors_total',
      help: 'Error frames sent, by code',
      labelNames: ['code'] as const,
      registers,
    }),
    accepted: new Counter({
      name: 'parley_relay_messages_accepted_total',
      help: 'Messages stored',
      registers,
    }),
    delivered: new Counter({
      name: 'parley_relay_messages_delivered_total',
      help: 'Deliveries pushed',
      registers,
    }),
    acked: new Counter({
      name: 'parley_relay_messages_acked_total',
      help: 'Messages acked and deleted',
      registers,
    }),
    expired: new Counter({
      name: 'parley_relay_messages_expired_total',
      help: 'Messages expired by TTL',
      registers,
    }),
    evicted: new Counter({
      name: 'parley_relay_messages_evicted_total',
      help: 'Messages evicted by the mailbox limit',
      registers,
    }),
    rateLimited: new Counter({
      name: 'parley_relay_rate_limited_total',
      help: 'Requests refused by a quota, by scope',
      labelNames: ['scope'] as const,
      registers,
    }),
    certificatesIssued: new Counter({
      name: 'parley_relay_sender_certificates_issued_total',
      help: 'Sender certificates issued',
      registers,
    }),
    unidentified: new Counter({
      name: 'parley_relay_unidentified_sends_total',
      help: 'Unidentified (sender-hidden) sends, by outcome; never labelled with a sender',
      labelNames: ['outcome'] as const,
      registers,
    }),
    oprfEvaluations: new Counter({
      name: 'parley_relay_oprf_evaluations_total',
      help: 'OPRF elements evaluated',
      registers,
    }),
    activations: new Counter({
      name: 'parley_relay_activations_total',
      help: 'Activation events, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
    closedConnections: new Counter({
      name: 'parley_relay_connections_closed_total',
      help: 'Connections closed by the relay, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
  }
}

/** The relay's metrics. */
export type Metrics = ReturnType<typeof createMetrics>
