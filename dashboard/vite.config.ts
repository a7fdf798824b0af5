import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The app is built into dist/ (embedded into the bot's binary); public/ (the owners'
// migration page) is copied as it is. `npm run dev` proxies the API and /ws to a bot on 3001.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:3001",
      "/ws": { target: "ws://127.0.0.1:3001", ws: true },
    },
  },
  test: { include: ["test/**/*.test.ts", "test/**/*.test.tsx"], environment: "node" },
} as any);
