import { assign, emit, sendParent, setup } from 'xstate';
import type { QuotaStatus } from '../protocol/index.ts';
import type { Usage } from './providers/provider.ts';

export interface QuotaInput {
  /** What one period allows, in `unit`s. */
  totalQuota: number;
  /** Requests count one each; tokens count the provider's reported input + output tokens. */
  unit?: 'requests' | 'tokens';
  /** Length of a quota period (default: a day). */
  periodMs?: number;
  /** When the current period ends (default: one period from now). */
  resetTime?: number;
  usedQuota?: number;
  provider: string;
  capabilities?: string[];
  /** Changes are announced at most this often (default 2 s). */
  announceEveryMs?: number;
  now?: () => number;
}

export interface QuotaContext {
  quota: QuotaStatus;
  unit: 'requests' | 'tokens';
  periodMs: number;
  announceEveryMs: number;
  now: () => number;
}

export type QuotaEvent =
  | { type: 'quota.consume'; usage: Usage | undefined }
  | { type: 'quota.set'; totalQuota: number; usedQuota?: number }
  | { type: 'quota.tick' };

export type QuotaEmitted = { type: 'quota.changed'; quota: QuotaStatus };

const status = (quota: Omit<QuotaStatus, 'availableQuota'>): QuotaStatus => ({
  ...quota,
  availableQuota: Math.max(0, quota.totalQuota - quota.usedQuota),
});

const DAY_MS = 24 * 60 * 60 * 1000;

/** The quota a monitor starts with (the root announces it from the start, before any change). */
export function initialQuota(input: QuotaInput): QuotaStatus {
  const now = input.now ?? Date.now;
  return status({
    totalQuota: input.totalQuota,
    usedQuota: input.usedQuota ?? 0,
    resetTime: input.resetTime ?? now() + (input.periodMs ?? DAY_MS),
    provider: input.provider,
    capabilities: input.capabilities ?? ['text'],
  });
}

/**
 * The quota monitor: the design's Quota Data Model for this peer's own AI. Usage is counted per
 * request from what the provider reports; the period resets on schedule; changes reach the parent
 * (which announces them to signaling) at most once per `announceEveryMs`.
 */
export const quotaMachine = setup({
  types: {
    input: {} as QuotaInput,
    context: {} as QuotaContext,
    events: {} as QuotaEvent,
    emitted: {} as QuotaEmitted,
  },
  delays: {
    untilReset: ({ context }) => Math.max(0, context.quota.resetTime - context.now()),
    announceThrottle: ({ context }) => context.announceEveryMs,
  },
  actions: {
    consume: assign({
      quota: ({ context, event }) => {
        if (event.type !== 'quota.consume') return context.quota;
        const cost =
          context.unit === 'requests'
            ? 1
            : (event.usage?.inputTokens ?? 0) + (event.usage?.outputTokens ?? 0);
        return status({ ...context.quota, usedQuota: context.quota.usedQuota + cost });
      },
    }),
    setQuota: assign({
      quota: ({ context, event }) =>
        event.type === 'quota.set'
          ? status({
              ...context.quota,
              totalQuota: event.totalQuota,
              usedQuota: event.usedQuota ?? context.quota.usedQuota,
            })
          : context.quota,
    }),
    reset: assign({
      quota: ({ context }) => {
        let resetTime = context.quota.resetTime;
        while (resetTime <= context.now()) resetTime += context.periodMs;
        return status({ ...context.quota, usedQuota: 0, resetTime });
      },
    }),
    announce: sendParent(({ context }) => ({ type: 'quota.changed' as const, quota: context.quota })),
    emitChange: emit(({ context }) => ({ type: 'quota.changed' as const, quota: context.quota })),
  },
}).createMachine({
  id: 'quota',
  description:
    'Counts this peer’s own AI usage against its quota, resets it on schedule, and announces changes (throttled).',
  context: ({ input }) => {
    const now = input.now ?? Date.now;
    return {
      quota: initialQuota(input),
      unit: input.unit ?? 'requests',
      periodMs: input.periodMs ?? DAY_MS,
      announceEveryMs: input.announceEveryMs ?? 2_000,
      now,
    };
  },
  type: 'parallel',
  states: {
    period: {
      description: 'Resets usage when the period ends.',
      initial: 'counting',
      states: {
        counting: {
          on: {
            'quota.consume': { actions: ['consume', 'emitChange'], target: 'counting' },
            'quota.set': { actions: ['setQuota', 'emitChange'] },
          },
          after: { untilReset: { target: 'counting', reenter: true, actions: ['reset', 'emitChange'] } },
        },
      },
    },
    announcing: {
      description: 'Changes are announced at once, then at most once per throttle window.',
      initial: 'idle',
      states: {
        idle: {
          on: {
            'quota.consume': { target: 'cooling', actions: 'announce' },
            'quota.set': { target: 'cooling', actions: 'announce' },
            'quota.tick': { target: 'cooling', actions: 'announce' },
          },
        },
        cooling: {
          on: {
            'quota.consume': 'dirty',
            'quota.set': 'dirty',
          },
          after: { announceThrottle: 'idle' },
        },
        dirty: {
          description: 'Something changed while cooling: announce the latest when the window ends.',
          after: { announceThrottle: { target: 'cooling', actions: 'announce' } },
        },
      },
    },
  },
});
