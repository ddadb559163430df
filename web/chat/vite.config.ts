import { defineConfig } from 'vite';

// No React plugin needed: esbuild compiles the TSX (automatic JSX runtime). The bundle lands in
// dist/ (git-ignored), which examples/chat_server.py serves: index.html at / and dist/assets/.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      onwarn(warning, warn) {
        // Dependencies' "use client" directives and comment placements: harmless when bundled.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE' || warning.code === 'INVALID_ANNOTATION') return;
        warn(warning);
      },
    },
  },
  logLevel: 'warn',
});
