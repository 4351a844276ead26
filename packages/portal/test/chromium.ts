/**
 * Debian's Chromium for the portal's browser tests, driven by playwright-core (never a downloaded browser). A test
 * is skipped, saying so, only when /usr/bin/chromium is absent outside CI (`scripts/install-chromium.sh` installs
 * it); in CI its absence fails the test.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';
import { base32Decode, totp } from '@medshare/identity';

const CHROMIUM = '/usr/bin/chromium';

/** The skip reason of a browser test on this machine, or false. */
export const chromiumSkip: string | false =
  !existsSync(CHROMIUM) && !process.env['CI'] ? `${CHROMIUM} is not installed (bash scripts/install-chromium.sh installs it)` : false;

/** Starts headless Chromium without its background traffic (updates, sync, first-run pages). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/**
 * Signs in through the portal at `portal` and its hospital's sign-in pages (OpenID Connect: password, then TOTP),
 * until the portal shows her signed in; `beforeContinue` runs on the filled password page (a screenshot).
 */
export async function signInWithTotp(
  page: Page,
  portal: string,
  hospital: string,
  username: string,
  password: string,
  totpSecret: string,
  beforeContinue?: () => Promise<void>,
): Promise<void> {
  await page.goto(portal);
  await page.getByRole('button', { name: `Sign in with ${hospital}` }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await beforeContinue?.();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel('One-time code from your authenticator app').fill(totp(base32Decode(totpSecret), Date.now() / 1000));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(portal);
  await page.getByText(`${username} ·`).waitFor();
}

/** axe-core (Deque's accessibility engine), evaluated in the page (through DevTools, so the portal's CSP is left as it is). */
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * The WCAG 2.1 level A and AA violations axe-core finds on the page as it is now — text contrast, labels and
 * accessible names, landmarks, headings, tables — each as `rule: help (first elements)`.
 */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  return page.evaluate(`(async () => {
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => v.id + ': ' + v.help + ' (' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ') + ')');
  })()`);
}
