import '../elements/handoff-panel.ts';
import '../elements/handoff-inspector/handoff-inspector.ts';
import { createInspectorSource } from '../elements/handoff-inspector/inspector-source.ts';
import { createHandoff, type Handoff, type HandoffOptions } from '../machines/create-handoff.ts';
import {
  createChromePromptProvider,
  isChromePromptApiAvailable,
} from '../machines/providers/chrome-prompt-api.ts';
import { createDemoProvider } from '../machines/providers/demo-provider.ts';
import { createOpenAICompatibleProvider } from '../machines/providers/openai-compatible.ts';
import type { AIProvider } from '../machines/providers/provider.ts';
import { SecurityManager } from '../machines/security/security-manager.ts';

/**
 * The demo page: this tab's settings (form and URL parameters), one Handoff manager created from
 * them and handed to <handoff-panel>, and <handoff-inspector> following that manager's actors.
 *
 * URL parameters (read once, at load): provider=none|demo|chrome|openai, model, baseUrl, quota,
 * used, maxConcurrent, policy=on|off, signaling=ws://… . The API key is never read from or written
 * to the address.
 */

const PROVIDERS = ['none', 'demo', 'chrome', 'openai'] as const;
type ProviderChoice = (typeof PROVIDERS)[number];

interface Settings {
  provider: ProviderChoice;
  model: string;
  baseUrl: string;
  /** Stays in this tab: never in the URL, only in the provider's Authorization header. */
  apiKey: string;
  /** undefined: unmetered (no quota monitor). */
  quota: number | undefined;
  used: number;
  maxConcurrent: number;
  policy: boolean;
  /** The demo provider's pace and answer length (URL only: `rate`, `words`). */
  demoRate: number | undefined;
  demoWords: number | undefined;
}

const MAX_QUOTA = 1_000_000_000;

/** What Chrome's Prompt API is asked for: English text in and out. */
const CHROME_OPTIONS = {
  expectedInputs: [{ type: 'text', languages: ['en'] }],
  expectedOutputs: [{ type: 'text', languages: ['en'] }],
};

function count(text: string | null | undefined, max: number): number | undefined {
  if (text === null || text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : undefined;
}

function fromUrl(params: URLSearchParams): Settings {
  const provider = params.get('provider');
  return {
    provider: PROVIDERS.includes(provider as ProviderChoice) ? (provider as ProviderChoice) : 'demo',
    model: (params.get('model') ?? '').slice(0, 200),
    baseUrl: (params.get('baseUrl') ?? '').slice(0, 2000),
    apiKey: '',
    quota: count(params.get('quota'), MAX_QUOTA),
    used: count(params.get('used'), MAX_QUOTA) ?? 0,
    maxConcurrent: Math.max(1, count(params.get('maxConcurrent'), 16) ?? 2),
    policy: params.get('policy') !== 'off',
    demoRate: count(params.get('rate'), 1_000),
    demoWords: count(params.get('words'), 5_000),
  };
}

function toUrl(settings: Settings): string {
  const params = new URLSearchParams();
  params.set('provider', settings.provider);
  if (settings.model) params.set('model', settings.model);
  if (settings.provider === 'openai' && settings.baseUrl) params.set('baseUrl', settings.baseUrl);
  if (settings.demoRate !== undefined) params.set('rate', String(settings.demoRate));
  if (settings.demoWords !== undefined) params.set('words', String(settings.demoWords));
  if (settings.quota !== undefined) {
    params.set('quota', String(settings.quota));
    if (settings.used) params.set('used', String(settings.used));
  }
  if (settings.maxConcurrent !== 2) params.set('maxConcurrent', String(settings.maxConcurrent));
  if (!settings.policy) params.set('policy', 'off');
  const signaling = new URLSearchParams(location.search).get('signaling');
  if (signaling) params.set('signaling', signaling);
  return `?${params}`;
}

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = byId<HTMLFormElement>('settings');
const panel = byId<HTMLElementTagNameMap['handoff-panel']>('panel');
const inspector = byId<HTMLElementTagNameMap['handoff-inspector']>('inspector');
const status = byId<HTMLParagraphElement>('settings-status');
const field = <T extends HTMLInputElement>(name: string) => form.elements.namedItem(name) as T;
const openaiFields = byId<HTMLFieldSetElement>('openai-fields');

const signalingUrl =
  new URLSearchParams(location.search).get('signaling') ??
  (import.meta.env.VITE_HANDOFF_SIGNALING_URL as string | undefined) ??
  `ws://${location.hostname}:8083/`;
byId('signaling-url').textContent = signalingUrl;

const source = createInspectorSource({ maxEvents: 200 });
inspector.source = source;

function showSettings(settings: Settings): void {
  for (const radio of form.querySelectorAll<HTMLInputElement>('input[name="provider"]')) {
    radio.checked = radio.value === settings.provider;
  }
  field('model').value = settings.model;
  field('baseUrl').value = settings.baseUrl;
  field('quota').value = settings.quota === undefined ? '' : String(settings.quota);
  field('used').value = String(settings.used);
  field('maxConcurrent').value = String(settings.maxConcurrent);
  field('policy').checked = settings.policy;
  showProviderFields();
}

function readSettings(): Settings {
  const data = new FormData(form);
  const text = (name: string) => String(data.get(name) ?? '').trim();
  const url = new URLSearchParams(location.search);
  return {
    demoRate: count(url.get('rate'), 1_000),
    demoWords: count(url.get('words'), 5_000),
    provider: (data.get('provider') as ProviderChoice | null) ?? 'none',
    model: text('model').slice(0, 200),
    baseUrl: text('baseUrl').slice(0, 2000),
    apiKey: text('apiKey'),
    quota: count(text('quota'), MAX_QUOTA),
    used: count(text('used'), MAX_QUOTA) ?? 0,
    maxConcurrent: Math.max(1, count(text('maxConcurrent'), 16) ?? 2),
    policy: data.get('policy') === 'on',
  };
}

function showProviderFields(): void {
  const openai = form.querySelector<HTMLInputElement>('input[name="provider"][value="openai"]')?.checked;
  openaiFields.hidden = !openai;
  openaiFields.disabled = !openai;
}

function providerFor(settings: Settings): AIProvider | undefined {
  const model = settings.model || undefined;
  switch (settings.provider) {
    case 'none':
      return undefined;
    case 'demo':
      return createDemoProvider({
        ...(model ? { model } : {}),
        ...(settings.demoRate !== undefined ? { wordsPerSecond: settings.demoRate } : {}),
        ...(settings.demoWords !== undefined ? { answerWords: settings.demoWords } : {}),
      });
    case 'chrome':
      return createChromePromptProvider({ createOptions: CHROME_OPTIONS });
    case 'openai':
      if (!settings.baseUrl) throw new Error('the OpenAI-compatible provider needs a base URL');
      if (!model) throw new Error('the OpenAI-compatible provider needs a model');
      return createOpenAICompatibleProvider({
        baseUrl: settings.baseUrl,
        model,
        ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
      });
  }
}

function describe(settings: Settings, provider: AIProvider | undefined): string {
  const parts = [provider ? provider.label : 'No AI: prompts are delegated'];
  if (settings.quota !== undefined) {
    const left = Math.max(0, settings.quota - settings.used);
    parts.push(left === 0 ? `quota used up (${settings.quota})` : `quota ${left} of ${settings.quota} left`);
  } else if (provider) parts.push('unmetered');
  parts.push(
    `serves ${settings.maxConcurrent} at once`,
    settings.policy ? 'prompt policy on' : 'prompt policy off',
  );
  return parts.join(' · ');
}

let manager: Handoff | undefined;
let applied: { settings: Settings; provider: AIProvider | undefined } | undefined;
/** Bumped on every apply: a manager that finishes starting after a newer apply is stopped. */
let generation = 0;

/** Creates this tab's manager from `settings`, hands it to the panel, and stops the previous one. */
async function apply(settings: Settings): Promise<void> {
  const mine = ++generation;
  // Only the quota changed: the running manager takes it (its peers hear of it).
  if (manager && applied && sameExceptQuota(applied.settings, settings) && settings.quota !== undefined) {
    manager.setQuota(settings.quota, settings.used);
    applied = { settings, provider: applied.provider };
    status.textContent = describe(settings, applied.provider);
    history.replaceState(null, '', toUrl(settings));
    return;
  }
  status.textContent = 'Starting…';
  let next: Handoff;
  let provider: AIProvider | undefined;
  try {
    provider = providerFor(settings);
    const options: HandoffOptions = {
      inspect: source.inspect,
      ...(provider ? { provider } : {}),
      ...(settings.quota !== undefined
        ? { quota: { totalQuota: settings.quota, usedQuota: settings.used } }
        : {}),
      maxConcurrentServes: settings.maxConcurrent,
      security: new SecurityManager({
        now: Date.now,
        limiter: { maxConcurrent: settings.maxConcurrent },
        ...(settings.policy ? {} : { patterns: [] }),
      }),
    };
    next = await createHandoff(options);
  } catch (error) {
    if (mine === generation) status.textContent = `Not applied: ${(error as Error).message}`;
    return;
  }
  if (mine !== generation) {
    next.stop();
    return;
  }
  discoverWhenOnline(next);
  const previous = manager;
  manager = next;
  applied = { settings, provider };
  panel.manager = next;
  // Set only now: a panel with a signaling URL and no manager would create (and connect) its own.
  // The panel connects each manager it is handed.
  if (!panel.hasAttribute('signaling-url')) panel.setAttribute('signaling-url', signalingUrl);
  // The old manager leaves the signaling server and stops every actor it ran.
  previous?.stop();
  status.textContent = describe(settings, provider);
  history.replaceState(null, '', toUrl(settings));
}

/**
 * The page's policy: each time this tab comes online (first connect, reconnect) it asks the server
 * for peers once; from then on the list stays live from the server's capability updates. Without
 * it a tab would know only the peers that announced after it connected.
 */
function discoverWhenOnline(handoff: Handoff): void {
  let online = false;
  handoff.onConnectionStateChange((state) => {
    const now = state !== 'Disconnected' && state !== 'Signaling' && state !== 'Failed';
    if (now && !online && handoff === manager) handoff.discoverPeers().catch(() => {});
    online = now;
  });
}

function sameExceptQuota(a: Settings, b: Settings): boolean {
  return (
    a.provider === b.provider &&
    a.model === b.model &&
    a.baseUrl === b.baseUrl &&
    a.apiKey === b.apiKey &&
    a.maxConcurrent === b.maxConcurrent &&
    a.policy === b.policy &&
    (a.quota === undefined) === (b.quota === undefined)
  );
}

form.addEventListener('change', (event) => {
  if ((event.target as HTMLInputElement).name === 'provider') showProviderFields();
});
form.addEventListener('submit', (event) => {
  event.preventDefault();
  void apply(readSettings());
});
// The manager's session ends with the tab.
window.addEventListener('pagehide', () => manager?.stop());

/** Offers Chrome's built-in AI only where it can answer now. */
async function checkChrome(): Promise<boolean> {
  const radio = form.querySelector<HTMLInputElement>('input[name="provider"][value="chrome"]');
  const available = await isChromePromptApiAvailable(undefined, CHROME_OPTIONS);
  if (radio) radio.disabled = !available;
  byId('chrome-note').textContent = available ? 'on-device model, ready' : '(not available in this browser)';
  return available;
}

async function start(): Promise<void> {
  let settings = fromUrl(new URLSearchParams(location.search));
  showSettings(settings);
  if (!(await checkChrome()) && settings.provider === 'chrome') {
    settings = { ...settings, provider: 'none' };
    showSettings(settings);
  }
  await apply(settings);
  if (settings.provider === 'none' && new URLSearchParams(location.search).get('provider') === 'chrome') {
    status.textContent = `Chrome built-in AI is not available in this browser. ${status.textContent}`;
  }
}

void start();

/** For the curious, in the console: `handoffDemo.manager`, `handoffDemo.source.snapshot()`. */
Object.assign(globalThis, {
  handoffDemo: {
    source,
    get manager() {
      return manager;
    },
  },
});
