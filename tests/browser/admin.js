#!/usr/bin/env node
// The operator's console (/admin/) in a real browser: Debian's headless
// Chromium driven by playwright-core (no browser is ever downloaded). Run by
// tests/integration/test_admin_browser.py.
//
//   node admin.js --console URL --user U --password P --order ORDER_NO --amount FEN
//                 --user-data-dir DIR [--lang zh-CN|en]
//
// Signs in (the console sends the browser there first), finds the order by
// its number, asks for a partial refund, confirms it on the confirmation
// page, sees the refund and the ledger move on the order page, signs out.
// Every CSP violation or script error is collected (there must be none).
// Prints one JSON line with what it saw; exits 1 on failure.
'use strict';

const { chromium } = require('playwright-core');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const consoleUrl = arg('console');
const user = arg('user');
const password = arg('password');
const orderNo = arg('order');
const amount = arg('amount');
const userDataDir = arg('user-data-dir');
const lang = arg('lang', 'zh-CN');
const TIMEOUT = 30000;

const text = async (page, sel) => ((await page.locator(sel).first().textContent()) || '').trim();

async function run(context) {
  const page = await context.newPage();
  const out = { problems: [] };
  // CSP violations ("Refused to ...") and script errors; failed loads are
  // judged by their URL below (the web server's own /favicon.ico is not ours)
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) out.problems.push(m.text());
  });
  page.on('pageerror', (e) => out.problems.push(String(e)));
  page.on('response', (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') out.problems.push(r.status() + ' ' + r.url());
  });

  await page.goto(consoleUrl + '/');
  out.login_url = page.url();
  out.login_title = await page.title();
  out.html_lang = await page.locator('html').getAttribute('lang');
  await page.fill('#f-username', user);
  await page.fill('#f-password', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/login')), page.click('#login')]);
  out.after_login_url = page.url();
  out.signed_in_as = await text(page, '#signed-in-as');
  out.today_title = await text(page, '#title');
  out.chart_bars = await page.locator('#chart rect').count();

  await page.click('nav a[href$="/admin/orders"]');
  await page.fill('#f-q', orderNo);
  await Promise.all([page.waitForURL((u) => u.search.includes('q=')), page.click('#search')]);
  await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/orders/' + orderNo)),
                     page.click(`#orders a:text-is("${orderNo}")`)]);
  out.order_title = await text(page, '#title');
  out.ledger_rows_before = await page.locator('#ledger tbody tr').count();
  out.refundable = await text(page, '#refundable');

  await page.fill('#f-amount_fen', amount);
  await page.fill('#f-reason', 'browser test');
  await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/refund')), page.click('#refund-review')]);
  out.confirm_question = await text(page, '#confirm-question');
  await Promise.all([page.waitForNavigation(), page.click('#confirm')]);
  out.action_result = await text(page, '#action-result');

  await page.goto(consoleUrl + '/orders/' + orderNo);
  out.refund_rows = await page.locator('#refunds tbody tr').count();
  out.ledger_rows_after = await page.locator('#ledger tbody tr').count();
  out.refunded_fen = await page.locator('#refunded').getAttribute('data-fen');

  await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/login')), page.click('#logout')]);
  out.logout_message = await text(page, '#login-message');
  await page.goto(consoleUrl + '/orders/' + orderNo);
  out.after_logout_url = page.url();
  return out;
}

(async () => {
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      locale: lang,                 // sets Accept-Language
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context.setDefaultTimeout(TIMEOUT);
    const out = await run(context);
    process.stdout.write(JSON.stringify(out) + '\n');
    await context.close();
    process.exit(0);
  } catch (e) {
    process.stderr.write('browser test failed: ' + (e && e.stack ? e.stack : e) + '\n');
    if (context) await context.close().catch(() => {});
    process.exit(1);
  }
})();
