// Headless Chromium for the page tests, from the npm package @sparticuz/chromium (a
// devDependency), so a machine needs nothing but `npm ci`: no Debian chromium, no browser
// download. The package ships the binary brotli-compressed and unpacks it into os.tmpdir() on
// first use; we unpack it once per package version into a cache directory of our own, through a
// staging directory renamed into place, so that a run killed half-way (or two test processes at
// once) never leaves a truncated binary behind for the next run to trust.
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import chromium from '@sparticuz/chromium';
import { chromium as playwright, type BrowserContext, type Page } from 'playwright-core';

export interface TestBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/** The package's version, so that an upgrade unpacks its own binary. */
function packageVersion(): string {
  const entry = fileURLToPath(import.meta.resolve('@sparticuz/chromium'));
  const manifest = join(dirname(entry), '..', 'package.json');
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

/** Path of the unpacked chromium binary, unpacking it first if no earlier run did. */
async function executablePath(): Promise<string> {
  const dir = join(tmpdir(), `ttalloc-sparticuz-chromium-${packageVersion()}`);
  const binary = join(dir, 'chromium');
  if (existsSync(binary)) return binary;
  const staging = mkdtempSync(`${dir}.staging-`);
  // The package unpacks into os.tmpdir(), which reads TMPDIR at each call.
  const savedTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = staging;
  try {
    await chromium.executablePath();
  } finally {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
  }
  try {
    renameSync(staging, dir);
  } catch (err) {
    // Another process unpacked the same version first: use its copy.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(binary)) throw err;
  }
  return binary;
}

/** Starts headless Chromium with a fresh profile directory and no traffic of its own. */
export async function launchBrowser(viewport: { width: number; height: number }) {
  const profile = mkdtempSync(join(tmpdir(), 'ttalloc-chromium-profile-'));
  const args = [
    // As root (the test machines run as root), Chromium refuses to start with its sandbox.
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    // Without these, Chromium reaches for Google's hosts at start and keeps retrying on a
    // closed network.
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
  let context: BrowserContext;
  try {
    context = await playwright.launchPersistentContext(profile, {
      executablePath: await executablePath(),
      headless: true,
      viewport,
      // This build takes its default locale from LANG; under LANG=C.UTF-8 that is
      // 'en-US@posix', which Intl rejects (uPlot then fails to load). Name one.
      locale: 'en-US',
      args,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const browser: TestBrowser = {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
  return browser;
}

/** What went wrong on a page: its script errors and every request that failed or got ≥ 400. */
export interface PageTrouble {
  errors: string[];
  failed: string[];
}

/** Records a page's script errors and failed requests from now on (a favicon 404 counts). */
export function watchPage(page: Page): PageTrouble {
  const t: PageTrouble = { errors: [], failed: [] };
  page.on('pageerror', (e) => t.errors.push(e.message));
  page.on('response', (res) => {
    if (res.status() >= 400) t.failed.push(`${res.status()} ${res.url()}`);
  });
  page.on('requestfailed', (req) => {
    // A page closed or navigated away ends its event stream: that is not a failure.
    if (req.url().endsWith('/v1/events')) return;
    t.failed.push(`${req.failure()?.errorText ?? 'failed'} ${req.url()}`);
  });
  return t;
}
