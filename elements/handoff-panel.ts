/**
 * Handoff's web components, in one module: importing it registers every element. This is the entry
 * the bundle is built from.
 *
 * ```html
 * <script type="module" src="handoff-panel.js"></script>
 * <handoff-panel signaling-url="ws://127.0.0.1:8083/"></handoff-panel>
 * ```
 */

// The client itself, so a page that loads only this bundle can give the panel a manager with its own AI.
export { createHandoff, type Handoff, type HandoffOptions } from '../machines/create-handoff.ts';
export {
  createChromePromptProvider,
  isChromePromptApiAvailable,
} from '../machines/providers/chrome-prompt-api.ts';
export { createDemoProvider } from '../machines/providers/demo-provider.ts';
export { handoffActorContext, handoffManagerContext } from './context.ts';
export { HandoffEventsController } from './controllers/events.controller.ts';
export { ManagerController } from './controllers/manager.controller.ts';
export {
  ActorTreeController,
  FrameBatcher,
  observeTree,
  SelectController,
} from './controllers/select.controller.ts';
export * from './events.ts';
export { HandoffDelegationForm } from './handoff-delegation-form/handoff-delegation-form.ts';
export { HandoffHistory } from './handoff-history/handoff-history.ts';
export { HandoffNetworkQuality } from './handoff-network-quality/handoff-network-quality.ts';
export { HandoffPanel } from './handoff-panel/handoff-panel.ts';
export { HandoffPeerGrid } from './handoff-peer-grid/handoff-peer-grid.ts';
export { HandoffQuotaMeter } from './handoff-quota-meter/handoff-quota-meter.ts';
export { HandoffResponse } from './handoff-response/handoff-response.ts';
export { HandoffStatusBar } from './handoff-status-bar/handoff-status-bar.ts';
