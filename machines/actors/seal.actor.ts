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
  receive((command) => {
    if (command.type === 'seal.out') {
      const { message } = command;
      outbound = outbound.then(async () => {
        const sealed = needsSignature(message)
          ? ((await identity.sign(message as Signable, localPeerId, remotePeerId)) as LinkMessage)
          : message;
        if (!stopped) sendBack({ type: 'seal.sealed', message: sealed });
      });
      return;
    }
    const { message, bytes } = command;
    inbound = inbound.then(async () => {
      let verdict: SealEvent;
      if (!needsSignature(message)) verdict = { type: 'seal.opened', message, bytes };
      else if (!(message as Signable).sig) verdict = { type: 'seal.rejected', message, reason: 'unsigned' };
      else {
        try {
          const key = await keyring.key(remotePeerId);
          verdict = (await verifyMessage(message as Signable, remotePeerId, localPeerId, key))
            ? { type: 'seal.opened', message, bytes }
            : { type: 'seal.rejected', message, reason: 'bad signature' };
        } catch (error) {
          verdict = { type: 'seal.rejected', message, reason: (error as Error).message };
        }
      }
      if (!stopped) sendBack(verdict);
    });
  });
  return () => {
    stopped = true;
  };
});
