import { expect, it } from 'vitest';

it('runs in real Chromium with WebRTC available', () => {
  expect(navigator.userAgent).toContain('Chrome');
  expect(typeof RTCPeerConnection).toBe('function');
});
