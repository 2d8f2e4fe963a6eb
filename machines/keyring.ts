import { importPublicKey } from '../protocol/index.ts';

/**
 * The public keys other peers registered with the signaling server, as it handed them to us
 * (`peer-capability-update`, `peers-discovered`). A key we do not have yet is looked up
 * (`peer-lookup`) and waited for, within a bound.
 */
export class Keyring {
  readonly #keys = new Map<string, string>();
  readonly #imported = new Map<string, Promise<CryptoKey>>();
  readonly #waiting = new Map<string, ((key: string | undefined) => void)[]>();
  readonly #lookup: (peerId: string) => void;
  readonly #timeoutMs: number;

  constructor(lookup: (peerId: string) => void, timeoutMs = 5_000) {
    this.#lookup = lookup;
    this.#timeoutMs = timeoutMs;
  }

  /** Records a peer's registered key. A peer's key never changes: a different one is ignored. */
  learn(peerId: string, publicKey: string | undefined): void {
    if (!publicKey || this.#keys.has(peerId)) return;
    this.#keys.set(peerId, publicKey);
    for (const resolve of this.#waiting.get(peerId) ?? []) resolve(publicKey);
    this.#waiting.delete(peerId);
  }

  forget(peerId: string): void {
    this.#keys.delete(peerId);
    this.#imported.delete(peerId);
  }

  has(peerId: string): boolean {
    return this.#keys.has(peerId);
  }

  /** The peer's key, looked up if need be; rejects if none arrives in time. */
  async key(peerId: string): Promise<CryptoKey> {
    const imported = this.#imported.get(peerId);
    if (imported) return imported;
    const known = this.#keys.get(peerId) ?? (await this.#ask(peerId));
    if (!known) throw new Error(`no public key registered for peer ${peerId}`);
    const key = importPublicKey(known);
    this.#imported.set(peerId, key);
    return key;
  }

  #ask(peerId: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      const waiters = this.#waiting.get(peerId) ?? [];
      const timer = setTimeout(() => {
        const list = this.#waiting.get(peerId);
        if (list) list.splice(list.indexOf(done), 1);
        resolve(undefined);
      }, this.#timeoutMs);
      const done = (key: string | undefined) => {
        clearTimeout(timer);
        resolve(key);
      };
      waiters.push(done);
      this.#waiting.set(peerId, waiters);
      if (waiters.length === 1) this.#lookup(peerId);
    });
  }
}
