/**
 * Debian's Chromium driven by playwright-core, for the dashboard's tests in a real browser. No browser is downloaded:
 * `.ci/run` installs the `chromium` package, and where it is missing or cannot start the suite prints one line and is
 * skipped. Launched as the machine notes say (root, no GPU, no network but loopback): `--no-sandbox --disable-gpu
 * --disable-background-networking`; Playwright gives each launch a fresh profile directory and removes it at close.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** The browser, or why there is none (one line). */
export async function launchChromium(): Promise<Browser | string> {
  if (!existsSync(CHROMIUM_PATH)) return `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
  try {
    return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ARGS, timeout: 30_000 });
  } catch (err) {
    return `Chromium at ${CHROMIUM_PATH} does not start: ${(err as Error).message.split('\n')[0] ?? ''}`;
  }
}
