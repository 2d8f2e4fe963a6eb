import { defineConfig } from 'vite';

/**
 * `npx vite build demo` → dist/demo/: the demo page as static files. Served that way it connects to
 * `?signaling=ws://…`, or ws://<its host>:8083/. (`npm start` runs Vite's dev server without this file.)
 */
export default defineConfig({
  build: { outDir: '../dist/demo', emptyOutDir: true, target: 'es2022' },
});
