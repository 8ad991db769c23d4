#!/usr/bin/env node
// The creator accepts a WeChat payout on paygate's confirmation page with a
// real browser: Debian's headless Chromium driven by playwright-core. The
// page is opened as WeChat's in-app browser would show it: a WeixinJSBridge
// is injected before any page script runs (addInitScript =
// Page.addScriptToEvaluateOnNewDocument), and its invoke('requestMerchantTransfer',
// {mchId, appId, package}, cb) is forwarded to the sandbox's "phone"
// (POST /_sandbox/wechat_v3/transfer_confirm), whose answer's err_msg goes
// back to the page. Run by tests/integration/test_payouts_wechat_confirm.py.
//
//   node payout_confirm.js --url CONFIRM_URL --sandbox URL --user-data-dir DIR [--lang zh-CN|en]
//
// Prints one JSON line with what it saw; exits 1 on failure.
'use strict';

const { chromium } = require('playwright-core');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const confirmUrl = arg('url');
const sandboxUrl = arg('sandbox');
const userDataDir = arg('user-data-dir');
const lang = arg('lang', 'zh-CN');
const TIMEOUT = 30000;

const BRIDGE = `
window.WeixinJSBridge = {
  invoke: function (name, params, cb) {
    window.__invoked = { name: name, params: params };
    window.__phoneConfirm(name, params).then(function (r) { cb(r); },
      function (e) { cb({ err_msg: name + ':fail ' + e }); });
  },
};`;

async function phoneConfirm(name, params) {
  if (name !== 'requestMerchantTransfer') return { err_msg: name + ':fail unknown api' };
  const r = await fetch(sandboxUrl + '/_sandbox/wechat_v3/transfer_confirm', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ mchId: params.mchId, appId: params.appId, package: params.package }),
  });
  const body = await r.json().catch(() => ({}));
  return { err_msg: body.err_msg || (name + ':fail ' + r.status) };
}

(async () => {
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      locale: lang,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context.setDefaultTimeout(TIMEOUT);
    const page = await context.newPage();
    await page.exposeFunction('__phoneConfirm', phoneConfirm);
    await page.addInitScript(BRIDGE);
    const out = {};
    const resp = await page.goto(confirmUrl);
    out.status = resp.status();
    out.title = await page.title();
    out.lang = await page.locator('html').getAttribute('lang');
    out.intro = (await page.locator('#intro').textContent()).trim();
    out.open_in_wechat_hidden = await page.locator('#open-in-wechat').isHidden();
    const button = page.locator('#confirm-button');
    await button.waitFor();
    out.button_text = (await button.textContent()).trim();
    await page.waitForFunction(() => !document.getElementById('confirm-button').disabled);
    await button.click();
    await page.locator('#confirmed').waitFor({ state: 'visible' });
    out.confirmed_text = (await page.locator('#confirmed').textContent()).trim();
    out.invoked = await page.evaluate(() => window.__invoked);
    // the page reloads itself; once the notification is recorded it shows the payout paid
    for (let i = 0; i < 40; i++) {
      await page.waitForTimeout(500);
      if ((await page.locator('#paid').count()) === 1) break;
      if (i % 6 === 5) await page.reload();
    }
    out.paid_text = (await page.locator('#paid').count()) === 1
      ? (await page.locator('#paid').textContent()).trim() : null;
    out.final_title = await page.title();
    process.stdout.write(JSON.stringify(out) + '\n');
    await context.close();
    process.exit(0);
  } catch (e) {
    process.stderr.write('browser test failed: ' + (e && e.stack ? e.stack : e) + '\n');
    if (context) await context.close().catch(() => {});
    process.exit(1);
  }
})();
