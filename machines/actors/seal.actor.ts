import { fromCallback } from 'xstate';
import { type Identity, needsSignature, verifyMessage } from '../../protocol/index.ts';
import type { Keyring } from '../keyring.ts';
import type { LinkMessage } from '../link-framing.ts';

export type SealEvent =
  | { type: 'seal.sealed'; message: LinkMessage }
  | { type: 'seal.opened'; message: LinkMessage; bytes: number }
  | { type: 'seal.rejected'; message: LinkMessage; reason: string };

export type SealCommand =
  | { type: 'seal.out'; message: LinkMessage }
  | { type: 'seal.in'; message: LinkMessage; bytes: number };

/** Task messages carry an optional `sig`; link control messages have none. */
type Signable = LinkMessage & { sig?: string };

export interface SealInput {
  /** Without an identity and a keyring the seal passes messages through, synchronously. */
  identity: Identity | undefined;
  keyring: Keyring | undefined;
  localPeerId: string;
  remotePeerId: string;
}

/**
 * Signs what a link sends and verifies what it receives, in order each way (WebCrypto is
 * asynchronous; two chains keep the streams ordered). Link control messages pass untouched.
 */
export const sealActor = fromCallback<SealCommand, SealInput, SealEvent>(({ input, sendBack, receive }) => {
  let outbound: Promise<void> = Promise.resolve();
  let inbound: Promise<void> = Promise.resolve();
  let stopped = false;
  const { identity, keyring, localPeerId, remotePeerId } = input;
  if (!identity || !keyring) {
    receive((command) =>
      sendBack(
        command.type === 'seal.out'
          ? { type: 'seal.sealed', message: command.message }
          : { type: 'seal.opened', message: command.message, bytes: command.bytes },
      ),
    );
    return () => {};
  }
  /** The verdict on one inbound message (the key is fetched once per link, then cached by the keyring). */
  const open = async (message: LinkMessage, bytes: number): Promise<SealEvent> => {
    if (!needsSignature(message)) return { type: 'seal.opened', message, bytes };
    if (!(message as Signable).sig) return { type: 'seal.rejected', message, reason: 'unsigned' };
    try {
      const key = await keyring.key(remotePeerId);
      return (await verifyMessage(message as Signable, remotePeerId, localPeerId, key))
        ? { type: 'seal.opened', message, bytes }
        : { type: 'seal.rejected', message, reason: 'bad signature' };
    } catch (error) {
      return { type: 'seal.rejected', message, reason: (error as Error).message };
    }
  };
  // Each message's signature is started at once (WebCrypto works off the main thread, so several
  // overlap); only the results are chained, so each way still comes out in order.
  receive((command) => {
    if (command.type === 'seal.out') {
      const { message } = command;
      const sealing = needsSignature(message)
        ? identity.sign(message as Signable, localPeerId, remotePeerId)
        : Promise.resolve(message);
      outbound = outbound
        .then(async () => {
          const sealed = (await sealing) as LinkMessage;
          if (!stopped) sendBack({ type: 'seal.sealed', message: sealed });
        })
        // A message that cannot be signed (the key is gone) is not sent; the chain goes on.
        .catch(() => undefined);
      return;
    }
    const opening = open(command.message, command.bytes);
    inbound = inbound.then(async () => {
      const verdict = await opening;
      if (!stopped) sendBack(verdict);
    });
  });
  return () => {
    stopped = true;
  };
});
