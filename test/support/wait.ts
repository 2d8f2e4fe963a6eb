/** Polls `condition` every `everyMs` until it holds; fails after `timeoutMs`. Bounded in time and count. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
  everyMs = 10,
): Promise<void> {
  const rounds = Math.ceil(timeoutMs / everyMs);
  for (let round = 0; round < rounds; round++) {
    if (await condition()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
