/**
 * A serving Node peer in its own process, so tests can kill it outright (SIGKILL) mid-stream.
 * Prints one JSON line `{"peerId": "…"}` once registered; serves with the demo provider.
 *   node --import tsx test/support/peer-process.ts <signalingUrl> <wordsPerSecond> <answerWords>
 */
import { createHandoff } from '../../machines/create-handoff.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import { nodeEnvironment } from './node-environment.ts';

const [url, wordsPerSecond = '40', answerWords = '60'] = process.argv.slice(2);
if (!url) throw new Error('usage: peer-process.ts <signalingUrl> [wordsPerSecond] [answerWords]');
const provider = createDemoProvider({
  wordsPerSecond: Number(wordsPerSecond),
  answerWords: Number(answerWords),
});
const handoff = await createHandoff({ environment: nodeEnvironment(), provider });
const peerId = await handoff.connect(url);
process.stdout.write(`${JSON.stringify({ peerId })}\n`);
process.once('SIGTERM', () => {
  handoff.stop();
  setTimeout(() => process.exit(0), 50);
});
