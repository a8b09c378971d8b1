#!/usr/bin/env node
// The relay's command, run from its build (dist/, plain JavaScript: no tsx, no second process). `pnpm build` in
// apps/relay makes it; from the sources without a build, use `pnpm relay` (the repository root) instead.
import '../dist/cli.js'
