#!/usr/bin/env node
// `handoff-worker`: runs worker/main.ts through tsx's ESM loader, in this same process (so SIGTERM
// and SIGINT reach the worker directly and its exit code is the command's).
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
