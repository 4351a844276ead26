/**
 * The portal end to end in Debian's Chromium (playwright-core, never a downloaded browser), against the real
 * platform on 127.0.0.1 (PGlite), one browser and one server for the file. Each person has her own browser context
 * (her own IndexedDB). The story: an administrator onboards the cardiologist; the patient signs in through her
 * hospital's OpenID Connect provider, makes her keys in the browser, sees her records decrypted there and delegates
 * lab to a policy built in the policy builder; the cardiologist reads, the dermatologist is refused; the patient
 * revokes; the emergency doctor breaks the glass with a reason; the patient's access log shows all of it with
 * ledger proofs verified in her browser. A passkey is added and used to sign in through the DevTools virtual
 * authenticator. Every request the patient's browser sends is recorded and searched for her secret key.
 *
 * Screenshots go to $MEDSHARE_SCREENSHOTS when set (docs/portal/ is made that way). Skipped, saying so, only when
 * /usr/bin/chromium is absent outside CI (chromium.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Locator, Page, Request } from 'playwright-core';
import { pre } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey } from '@medshare/db';
import { createPlatform, GatewayClient, PlatformClient, roleScopes } from '@medshare/server';
import { accessibilityViolations, chromiumSkip as skip, launchChromium, signInWithTotp } from './chromium.ts';

const SHOTS = process.env['MEDSHARE_SCREENSHOTS'];
const ADMINS: Record<string, string> = { 'st-marys': 'admin-token-st-marys-portal-0123', riverside: 'admin-token-riverside-portal-4567' };
const PASSWORD = 'a long enough passphrase';
const BUNDLE = new URL('../../cli/fixtures/synthea-sample.json', import.meta.url);

/** True when `port` on 127.0.0.1 can be listened on now. */
async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

/** A first port of `count` free consecutive ones (the platform's services listen from it on; origins must be known first). */
async function freePorts(count: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await isFree(base + i);
    if (free) return base;
  }
}

test(
  'the portal in Chromium: enrol, delegate, read, refuse, revoke, break the glass, access log, passkey; the secret key never leaves the browser',
  { skip, timeout: 180_000 },
  async (t) => {
    const port = await freePorts(4);
    // authority :port, cloud :port+1, then each hospital, whose portal the browser opens at http://localhost:<its port>.
    const origins: Record<string, string> = { 'st-marys': `http://localhost:${port + 2}`, riverside: `http://localhost:${port + 3}` };
    assert.ok(existsSync(new URL('../dist/index.html', import.meta.url)), 'the portal is not built: npm run build -w @medshare/portal');
    const launching = launchChromium();
    const dataDir = await mkdtemp(join(tmpdir(), 'medshare-portal-'));
    const db = await openDatabase({ dataDir });
    const platform = await createPlatform({
      db,
      hospitals: ['st-marys', 'riverside'],
      adminTokens: ADMINS,
      kek: randomKeyEncryptionKey(),
      scrypt: { logN: 12, r: 8, p: 1 },
      relyingParty: { id: 'localhost', origins: Object.values(origins) },
      portalOrigins: Object.values(origins),
      requestsPerMinute: 10_000,
      port,
      identifierKey: randomBytes(32),
    });
    const sdk = new PlatformClient(platform.urls);
    let browser: Browser | undefined;
    t.after(async () => {
      await browser?.close();
      await platform.close();
      await db.close();
      await rm(dataDir, { recursive: true, force: true });
    });
    browser = await launching;
    /** A screenshot of the page, or of one section of it (`selector`), when $MEDSHARE_SCREENSHOTS is set. */
    const shot = async (page: Page, name: string, selector?: string) => {
      if (!SHOTS) return;
      const path = join(SHOTS, `${name}.png`);
      if (selector) await page.locator(selector).screenshot({ path });
      else await page.screenshot({ path, fullPage: true });
    };
    const person = async () => {
      const context = await browser!.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      return { context, page, errors };
    };
    const enrol = async (hospital: string, username: string, attributes: string[]) =>
      (await sdk.registerUser(hospital, ADMINS[hospital]!, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
    const signIn = (page: Page, hospital: string, username: string, password: string, totpSecret: string, shotName?: string) =>
      signInWithTotp(page, `${origins[hospital]}/portal/`, hospital, username, password, totpSecret, shotName ? () => shot(page, shotName) : undefined);
    /**
     * The first alert in `within` (a page, or one section of it: an earlier action's alert elsewhere on the page is
     * still shown, and must not be taken for this one's).
     */
    const alertText = async (within: Page | Locator) => (await within.getByRole('alert').first().textContent()) ?? '';
    /** Waits for `text` in `within`; an alert there instead fails at once, saying what it says. */
    const expectText = async (within: Page | Locator, text: string) => {
      const wanted = within.getByText(text).first();
      await wanted.or(within.getByRole('alert').first()).first().waitFor();
      if (!(await wanted.isVisible())) assert.fail(`waiting for "${text}": ${await alertText(within)}`);
    };

    // What the hospital serves the portal with, and who may call the cloud from a browser.
    const page = await fetch(new URL('/portal/', platform.urls.hospitals['st-marys']));
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.ok(csp.includes(`connect-src 'self' ${platform.urls.cloud.origin} ${platform.urls.authority.origin};`), csp);
    const config = await (await fetch(new URL('/portal/config.json', platform.urls.hospitals['st-marys']))).json();
    assert.deepEqual(config, { hospital: 'st-marys', cloud: platform.urls.cloud.origin, authority: platform.urls.authority.origin });
    const preflight = (from: string) =>
      fetch(new URL('/cloud/patients/psn:AAAAAAAAAAAAAAAAAAAAAA/delegations', platform.urls.cloud), {
        method: 'OPTIONS',
        headers: { origin: from, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
    assert.equal((await preflight(origins['st-marys']!)).headers.get('access-control-allow-origin'), origins['st-marys']);
    assert.equal((await preflight('https://evil.example')).headers.get('access-control-allow-origin'), null, 'a page of another origin may not call the cloud');

    // The administrator of Riverside onboards the cardiologist in the portal.
    const admin = await person();
    await admin.page.goto(`${origins['riverside']}/portal/`);
    await shot(admin.page, 'landing');
    const accessible = async (page: Page, screen: string) => assert.deepEqual(await accessibilityViolations(page), [], `${screen}: WCAG 2.1 AA violations`);
    await accessible(admin.page, 'landing');
    // The check is not blind: an unlabelled field and grey-on-white text put on the page are found, then removed.
    await admin.page.evaluate(`(() => {
    const field = document.createElement('input'); field.id = 'unlabelled';
    const faint = document.createElement('p'); faint.id = 'faint'; faint.textContent = 'faint text'; faint.style.color = '#bbbbbb';
    document.getElementById('main').append(field, faint);
  })()`);
    const planted = await accessibilityViolations(admin.page);
    assert.ok(planted.some((v) => v.startsWith('label:')) && planted.some((v) => v.startsWith('color-contrast:')), planted.join('\n'));
    await admin.page.evaluate(`document.getElementById('unlabelled').remove(); document.getElementById('faint').remove()`);
    await admin.page.getByRole('button', { name: 'Administer' }).click();
    await admin.page.getByLabel('Administrator credential').fill(ADMINS['riverside']!);
    await admin.page.getByLabel('Username', { exact: true }).fill('chen');
    await admin.page.getByLabel('Role').selectOption('doctor');
    await admin.page.getByLabel('Department').fill('cardiology');
    await admin.page.getByRole('button', { name: 'Onboard' }).click();
    const chenPassword = (await admin.page.locator('#new-password').textContent())!;
    const chenTotp = (await admin.page.locator('#new-totp').textContent())!;
    await admin.page.getByRole('button', { name: 'Check ledger and witnesses' }).click();
    await expectText(admin.page, 'Ledger healthy.');
    await shot(admin.page, 'admin');
    const wrongAdmin = await person();
    await wrongAdmin.page.goto(`${origins['st-marys']}/portal/`);
    await wrongAdmin.page.getByRole('button', { name: 'Administer' }).click(); // St Mary's, with Riverside's credential
    await wrongAdmin.page.getByLabel('Administrator credential').fill(ADMINS['riverside']!);
    await wrongAdmin.page.getByLabel('Username', { exact: true }).fill('mallory');
    await wrongAdmin.page.getByRole('button', { name: 'Onboard' }).click();
    assert.match(await alertText(wrongAdmin.page), /administrator credential of this hospital required/);

    // The patient signs in, makes her keys in the browser; every request of her browser is kept.
    const patientTotp = await enrol('st-marys', 'antonia', ['role:patient']);
    const patient = await person();
    const sent: Request[] = [];
    patient.context.on('request', (request) => sent.push(request));
    await signIn(patient.page, 'st-marys', 'antonia', PASSWORD, patientTotp, 'sign-in');
    // A SMART standalone launch: PKCE S256, the FHIR base as `aud`, SMART scopes, of which she is granted hers only.
    const authorize = new URL(sent.find((r) => r.url().includes('/identity/st-marys/oidc/authorize'))!.url());
    assert.equal(authorize.searchParams.get('aud'), `${origins['st-marys']}/gateway/fhir`);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.deepEqual(
      authorize.searchParams
        .get('scope')!
        .split(' ')
        .filter((s) => s.includes('/')),
      ['patient/*.rs', 'user/*.rs'],
    );
    const tokenAnswer = (await (await sent.find((r) => r.url().endsWith('/identity/st-marys/oidc/token'))!.response())!.json()) as { scope: string };
    assert.deepEqual(
      tokenAnswer.scope.split(' ').filter((s) => s.includes('/')),
      ['patient/*.rs'],
    );
    await shot(patient.page, 'patient-keys');
    await patient.page.getByRole('button', { name: 'Create my keys' }).click();
    await patient.page.locator('#pseudonym').or(patient.page.getByRole('alert')).first().waitFor();
    if (await patient.page.getByRole('alert').count()) assert.fail(`key creation: ${await alertText(patient.page)} ${patient.errors.join(' ')}`);
    const pseudonym = (await patient.page.locator('#pseudonym').textContent())!;
    assert.match(pseudonym, /^psn:[A-Za-z0-9_-]{22}$/);

    // St Mary's EHR enrols her under that pseudonym and uploads her records, encrypted under her public keys.
    const ehrTotp = await enrol('st-marys', 'ehr', ['role:gateway']);
    const gateway = new GatewayClient(await sdk.login('st-marys', 'ehr', PASSWORD, ehrTotp));
    const bundle = JSON.parse((await readFile(BUNDLE, 'utf8')).replace(/^\uFEFF/, '')) as { entry: Array<{ resource: { resourceType: string; id: string } }> };
    await gateway.enrol(bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, pseudonym);
    const uploaded = await gateway.upload(bundle);
    const labCount = uploaded.byCategory['lab']!;
    assert.ok(labCount > 0);

    // St Mary's administrator sees that upload's receipts, checked again by her hospital, and its witness's state; with
    // Riverside's credential (still in the field) she is refused. Only the receipts section is looked at: the refusal
    // of mallory's onboarding above is still shown, first on the page, and is not this request's answer.
    const receiptsSection = wrongAdmin.page.locator('#receipts');
    await wrongAdmin.page.getByRole('button', { name: 'Show upload receipts' }).click();
    assert.match(await alertText(receiptsSection), /administrator credential of this hospital required/);
    await wrongAdmin.page.getByLabel('Administrator credential').fill(ADMINS['st-marys']!);
    await wrongAdmin.page.getByRole('button', { name: 'Show upload receipts' }).click();
    await expectText(receiptsSection, `${uploaded.receipts.length} receipts, newest first`);
    const receiptRows = await wrongAdmin.page.locator('#receipts-table tbody tr').allTextContents();
    assert.equal(receiptRows.length, uploaded.receipts.length);
    assert.ok(
      receiptRows.every((r) => r.includes('✓ verified') && r.includes(pseudonym)),
      receiptRows.join('\n'),
    );
    assert.match((await wrongAdmin.page.locator('#witness-state').textContent())!, /Witness st-marys\.medshare\/witness is reachable/);
    await shot(wrongAdmin.page, 'admin-receipts', '#receipts');
    await accessible(wrongAdmin.page, 'administration with receipts');

    // Riverside's EHR asks to enrol her too: refused until she approves Riverside in the portal, then accepted.
    const riversideEhr = new GatewayClient(await sdk.login('riverside', 'ehr', PASSWORD, await enrol('riverside', 'ehr', ['role:gateway'])));
    const patientId = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
    await assert.rejects(riversideEhr.enrol(patientId, pseudonym));
    // By keyboard only: type in the labelled field, Tab to Approve, Enter.
    await patient.page.getByLabel('Hospital asking to enrol me').focus();
    await patient.page.keyboard.type('riverside');
    await patient.page.keyboard.press('Tab');
    assert.ok(
      await patient.page.getByRole('button', { name: 'Approve' }).evaluate((button) => button === button.ownerDocument.activeElement),
      'Tab reaches Approve',
    );
    await patient.page.keyboard.press('Enter');
    await expectText(patient.page, 'riverside may now enrol you and write into your record.');
    await patient.page.getByRole('button', { name: 'Withdraw riverside' }).waitFor();
    await shot(patient.page, 'patient-writers', '#writers');
    await riversideEhr.enrol(patientId, pseudonym);

    // She reads her own lab records, decrypted in her browser.
    await patient.page.locator('#records').getByLabel('Category').selectOption('lab');
    await patient.page.getByRole('button', { name: 'Show my records' }).click();
    await expectText(patient.page, `${labCount} records decrypted in this browser.`);
    assert.ok((await patient.page.locator('table.observations tbody tr').count()) > 0);
    await shot(patient.page, 'patient-records', '#records');

    // She builds "role:doctor and dept:cardiology" for lab; a broken edit is shown as invalid first.
    await patient.page.locator('#sharing').getByLabel('Category to share').selectOption('lab');
    await patient.page.getByLabel('Policy text').fill('role:doctor and (');
    assert.match((await patient.page.locator('#policy-verdict').textContent())!, /^✗/);
    await patient.page.getByLabel('Role (clause 1)').selectOption('doctor');
    await patient.page.getByLabel('Department (clause 1)').fill('cardiology');
    assert.equal(await patient.page.getByLabel('Policy text').inputValue(), 'role:doctor and dept:cardiology');
    assert.equal(await patient.page.locator('#policy-verdict').textContent(), '✓ valid policy');
    await patient.page.getByRole('button', { name: 'Share', exact: true }).click();
    await expectText(patient.page, 'Shared lab with role:doctor and dept:cardiology.');
    // And an emergency-only delegation of lab to role:emergency.
    await patient.page.getByLabel('Policy text').fill('role:emergency');
    await patient.page.getByLabel('Only for emergency access').check();
    await patient.page.getByRole('button', { name: 'Share', exact: true }).click();
    await expectText(patient.page, 'Shared lab with role:emergency (emergency only).');
    await shot(patient.page, 'patient-sharing', '#sharing');

    // The cardiologist reads lab as clinical views; the dermatologist is refused.
    const chen = await person();
    await signIn(chen.page, 'riverside', 'chen', chenPassword, chenTotp);
    // Once the patient allows it, she finds her by the medical record number St Mary's uploaded (across hospitals).
    const patientResource = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource as unknown as {
      identifier: Array<{ system: string; value: string }>;
    };
    const mrn = patientResource.identifier.find((i) => i.system === 'http://hospital.smarthealthit.org')!;
    await chen.page.getByLabel('Patient identifier').fill(`${mrn.system}|${mrn.value}`);
    await chen.page.getByRole('button', { name: 'Find patient' }).click();
    await expectText(chen.page, 'No patient who allows being found has this identifier.');
    await patient.page.getByRole('button', { name: 'Allow being found' }).click();
    await expectText(patient.page, 'Clinicians may now find you');
    await chen.page.getByRole('button', { name: 'Find patient' }).click();
    await expectText(chen.page, `Found ${pseudonym};`);
    assert.equal(await chen.page.getByLabel('Patient pseudonym').inputValue(), pseudonym);
    const read = async (page: Page, category = 'lab') => {
      await page.getByLabel('Patient pseudonym').fill(pseudonym);
      await page.getByLabel('Category').selectOption(category);
      await page.getByRole('button', { name: 'Read records' }).click();
    };
    await read(chen.page);
    await expectText(chen.page, `${labCount} lab records, decrypted in this browser`);
    assert.ok((await chen.page.locator('table.observations th', { hasText: 'Reference range' }).count()) === 1);
    await shot(chen.page, 'doctor-read');
    // She searches by code and date: the cholesterol observation, found through the encrypted index, decrypted here.
    const search = async (page: Page, code: string, date = '') => {
      await page.getByLabel('Resource type').selectOption('Observation');
      await page.getByLabel('Code', { exact: true }).fill(code);
      await page.getByLabel('Date', { exact: true }).fill(date);
      await page.getByRole('button', { name: 'Search records' }).click();
    };
    await search(chen.page, 'http://loinc.org|2093-3', 'ge2000-01-01');
    await expectText(chen.page, '1 Observation records (lab) match');
    assert.deepEqual(await chen.page.locator('table.observations tbody tr td:first-child').allTextContents(), ['Total Cholesterol']);
    await shot(chen.page, 'doctor-search');
    await accessible(chen.page, 'clinician search');
    await search(chen.page, '2093-3', 'lt2000-01-01'); // the same code before it was measured: nothing
    await expectText(chen.page, '0 Observation records (lab) match');

    const patelTotp = await enrol('riverside', 'patel', ['role:doctor', 'dept:dermatology']);
    const patel = await person();
    await signIn(patel.page, 'riverside', 'patel', PASSWORD, patelTotp);
    await read(patel.page);
    assert.match(await alertText(patel.page), /polic|not satisf|denied|delegat/i);
    await shot(patel.page, 'doctor-refused');
    await search(patel.page, '2093-3');
    assert.match(await alertText(patel.page), /polic|not satisf|denied|delegat/i);

    // The cardiologist adds a passkey, and signs in with it through the virtual authenticator.
    const cdp = await chen.context.newCDPSession(chen.page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await chen.page.getByRole('button', { name: 'Add a passkey' }).click();
    await expectText(chen.page, 'Passkey added');
    await chen.page.goto(`${origins['riverside']}/portal/`);
    await chen.page.getByRole('button', { name: 'Sign in with riverside' }).click();
    await chen.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await chen.page.waitForURL(`${origins['riverside']}/portal/`);
    await expectText(chen.page, 'chen ·');

    // The patient revokes the routine lab delegation; the cardiologist (signed in with her passkey) is refused.
    await patient.page.getByRole('button', { name: 'Revoke lab for role:doctor and dept:cardiology' }).click();
    await expectText(patient.page, 'Revoked: the cloud deleted the key for lab.');
    await read(chen.page);
    assert.match(await alertText(chen.page), /polic|not satisf|denied|delegat|no active/i);

    // The emergency doctor breaks the glass, with a reason.
    const okaforTotp = await enrol('riverside', 'okafor', ['role:emergency']);
    const okafor = await person();
    await signIn(okafor.page, 'riverside', 'okafor', PASSWORD, okaforTotp);
    await okafor.page.getByLabel('Patient pseudonym').fill(pseudonym);
    await okafor.page.getByLabel('Category').selectOption('lab');
    await okafor.page.getByRole('button', { name: 'Break the glass' }).click();
    assert.match(await alertText(okafor.page), /needs a stated reason/);
    await okafor.page.getByLabel('Reason').fill('unconscious on arrival, suspected myocardial infarction');
    await okafor.page.getByRole('button', { name: 'Break the glass' }).click();
    await expectText(okafor.page, `Emergency access: ${labCount} lab records.`);
    await shot(okafor.page, 'break-glass');
    await accessible(okafor.page, 'break the glass');

    // Her access log shows the grants, the reads, the refusal, the revocation and the emergency read with its reason, proven.
    await patient.page.getByRole('button', { name: 'Check my access log' }).click();
    const log = patient.page.locator('#access-log-table');
    await log.waitFor();
    const rows = await log.locator('tbody tr').allTextContents();
    assert.ok(
      rows.some((r) => r.includes('emergency read') && r.includes('unconscious on arrival')),
      rows.join('\n'),
    );
    assert.ok(
      rows.some((r) => r.includes('doctor at riverside') && r.includes(`read${'lab'}${labCount} records`)),
      rows.join('\n'),
    );
    assert.ok(
      rows.some((r) => r.includes('doctor at riverside') && r.includes('refused')),
      'a refused read',
    );
    assert.ok(
      rows.some((r) => /revoke/i.test(r)),
      'the revocation',
    );
    assert.ok(
      rows.some((r) => r.includes('doctor at riverside') && r.includes('lookup by identifier')),
      'the lookup by her record number',
    );
    const proven = rows.filter((r) => r.includes('✓ entry')).length;
    assert.ok(proven >= rows.length - 1, `entries proven in the browser: ${proven} of ${rows.length}`);
    assert.ok(!rows.some((r) => r.includes('✗')), 'no proof failed');
    await shot(patient.page, 'patient-access-log', '#access-log');
    await accessible(patient.page, 'patient dashboard with records and access log');

    // Her secret key never left the browser: decode every string of every request and search for its bytes.
    const secret = Buffer.from(
      (await patient.page.evaluate(`(async () => {
    const db = await new Promise((resolve, reject) => { const r = indexedDB.open('medshare-portal', 1); r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
    const stored = await new Promise((resolve) => { const r = db.transaction('patient-keys').objectStore('patient-keys').getAll(); r.onsuccess = () => resolve(r.result[0]); });
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.iv, additionalData: new TextEncoder().encode(stored.id) }, stored.wrappingKey, stored.wrapped);
    return Array.from(new Uint8Array(plain));
  })()`)) as number[],
    );
    const master = Buffer.from(pre.decodePatientKey(secret).masterSecret);
    assert.equal(pre.decodePatientKey(secret).patientId, pseudonym);
    const carries = (text: string) => {
      if (text.includes(master.toString('hex'))) return true;
      for (const piece of text.match(/[A-Za-z0-9+/_-]{40,}={0,2}/g) ?? []) {
        for (const decoded of [Buffer.from(piece, 'base64'), Buffer.from(piece, 'base64url')]) if (decoded.includes(master.subarray(0, 16))) return true;
      }
      return false;
    };
    assert.ok(sent.length > 20, `requests seen: ${sent.length}`);
    const leaking = sent.filter((r) => carries(r.url()) || carries(JSON.stringify(r.headers())) || carries(r.postData() ?? ''));
    assert.deepEqual(
      leaking.map((r) => r.url()),
      [],
    );
    // The same search finds the secret where it is (the check is not blind).
    assert.ok(carries(secret.toString('base64')));

    // Riverside's administrator unlocks an account locked by failed passwords, then disables and enables it.
    const passwordStep = (password: string) =>
      fetch(new URL('/identity/riverside/login/password', platform.urls.hospitals['riverside']), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'patel', password }),
      });
    const administer = async (button: string, done: string) => {
      await admin.page.getByLabel('Username of the account').fill('patel');
      await admin.page.getByRole('button', { name: button, exact: true }).click();
      await expectText(admin.page, `${done} patel: done.`);
    };
    for (let i = 0; i < 6; i++) await passwordStep('not her password');
    assert.equal((await passwordStep(PASSWORD)).ok, false, 'locked after repeated failures');
    await administer('Unlock', 'unlock');
    assert.equal((await passwordStep(PASSWORD)).ok, true, 'unlocked');
    await administer('Disable', 'disable');
    assert.match(((await (await passwordStep(PASSWORD)).json()) as { detail: string }).detail, /this account is disabled/);
    await administer('Enable', 'enable');
    assert.equal((await passwordStep(PASSWORD)).ok, true, 'enabled again');
    for (const p of [admin, patient, chen, patel, okafor]) assert.deepEqual(p.errors, []);
  },
);
