import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// The app is built into dist/ (embedded into the bot's binary); public/ is copied as it is. `npm run dev` proxies the API and /ws to a bot on 3001.
export default defineConfig({
  plugins: [react()],
  // The plugins' pages (../plugins/*/page.tsx) import the app as @dashboard and React from here.
  resolve: {
    alias: [
      { find: "@dashboard", replacement: here("./src") },
      { find: /^react-dom(\/.*)?$/, replacement: here("./node_modules/react-dom") + "$1" },
      { find: /^react(\/.*)?$/, replacement: here("./node_modules/react") + "$1" },
    ],
  },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    fs: { allow: [here("..")] },
    proxy: {
      "/api": "http://127.0.0.1:3001",
      "/ws": { target: "ws://127.0.0.1:3001", ws: true },
    },
  },
  test: { include: ["test/**/*.test.ts", "test/**/*.test.tsx"], environment: "node" },
} as any);
