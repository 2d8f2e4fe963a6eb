/**
 * Runs `fn` in a later task of the event loop, after the microtasks and I/O already queued, without
 * timer clamping: `setImmediate` in Node, a MessageChannel in browsers (nested `setTimeout(0)` is
 * clamped to 4 ms there).
 */
export const nextTurn: (fn: () => void) => void =
  typeof setImmediate === 'function'
    ? (fn) => {
        setImmediate(fn);
      }
    : (() => {
        const channel = new MessageChannel();
        const queue: (() => void)[] = [];
        channel.port1.onmessage = () => queue.shift()?.();
        return (fn: () => void) => {
          queue.push(fn);
          channel.port2.postMessage(null);
        };
      })();
