import { parseArgs } from 'node:util';
import { mintAccessToken } from './credentials.ts';

/** `npm run token -- --secret S [--ttl 3600]`: prints a signed access token for `?token=`. */
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { secret: { type: 'string' }, ttl: { type: 'string', default: '3600' } },
});
const secret = values.secret ?? process.env.HANDOFF_AUTH_HMAC_SECRET;
if (!secret || !/^\d+$/.test(values.ttl)) {
  process.stderr.write('usage: npm run token -- --secret <HANDOFF_AUTH_HMAC_SECRET> [--ttl seconds]\n');
  process.exit(2);
}
process.stdout.write(`${mintAccessToken(secret, Math.floor(Date.now() / 1000) + Number(values.ttl))}\n`);
