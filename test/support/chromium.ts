/**
 * How every browser test launches Debian's Chromium: headless, offline (no background traffic),
 * and able to make loopback WebRTC links (the flag, plus a context granted camera and microphone,
 * turns off the IP hiding that would otherwise leave no usable candidate in a loopback namespace).
 */
export const CHROMIUM_PATH = process.env.HANDOFF_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
];

export const CHROMIUM_PERMISSIONS = ['camera', 'microphone'];
