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
// WeChat's browser lets requestMerchantTransfer through only after the page's
// JS-SDK wx.config succeeded. The page loads the JS-SDK from
// https://res.wx.qq.com/open/js/jweixin-1.6.0.js; the machine has no
// internet, so that request is answered here (Playwright request routing)
// with a stand-in JS-SDK whose wx.config asks the sandbox's "phone"
// (POST /_sandbox/wechat_mp/jssdk_config) to check the signature for
// location.href without its #fragment, against the jsapi_ticket the sandbox
// issued. wx.ready/checkJsApi and WeixinJSBridge.invoke work only after a
// config the phone accepted; a wrong signature fires wx.error instead.
//
//   node payout_confirm.js --url CONFIRM_URL --sandbox URL --user-data-dir DIR [--lang zh-CN|en]
//        [--expect paid|unavailable]
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
const expect = arg('expect', 'paid');
const TIMEOUT = 30000;
const JSSDK = 'https://res.wx.qq.com/open/js/jweixin-1.6.0.js';

const BRIDGE = `
window.WeixinJSBridge = {
  invoke: function (name, params, cb) {
    window.__invoked = { name: name, params: params };
    if (!(window.__wxVerified && window.__wxVerified(name))) {
      window.__refused = name;
      cb({ err_msg: name + ':fail permission denied' });
      return;
    }
    window.__phoneConfirm(name, params).then(function (r) { cb(r); },
      function (e) { cb({ err_msg: name + ':fail ' + e }); });
  },
};`;

// the stand-in JS-SDK (served for JSSDK): wx.config is checked by the phone
const FAKE_JWEIXIN = `
(function () {
  var state = 'none', apis = [], readyCbs = [], errorCbs = [], result = null;
  window.__wxVerified = function (name) { return state === 'ok' && apis.indexOf(name) >= 0; };
  window.wx = {
    config: function (c) {
      state = 'pending';
      window.__wxConfigCalls = (window.__wxConfigCalls || 0) + 1;
      window.__phoneJsConfig({ appId: c.appId, timestamp: c.timestamp, nonceStr: c.nonceStr,
        signature: c.signature, jsApiList: c.jsApiList, url: location.href.split('#')[0] })
        .then(function (r) {
          result = r; window.__wxConfigResult = r;
          if (r.errMsg === 'config:ok') { state = 'ok'; apis = c.jsApiList || [];
            readyCbs.forEach(function (f) { f(); }); }
          else { state = 'error'; errorCbs.forEach(function (f) { f(r); }); }
        });
    },
    ready: function (f) { if (state === 'ok') f(); else readyCbs.push(f); },
    error: function (f) { if (state === 'error') f(result); else errorCbs.push(f); },
    checkJsApi: function (o) {
      if (state !== 'ok') { if (o.fail) o.fail({ errMsg: 'checkJsApi:fail' }); return; }
      var res = {};
      (o.jsApiList || []).forEach(function (n) { res[n] = apis.indexOf(n) >= 0; });
      if (o.success) o.success({ checkResult: res, errMsg: 'checkJsApi:ok' });
    },
  };
})();`;

async function phoneJsConfig(params) {
  const r = await fetch(sandboxUrl + '/_sandbox/wechat_mp/jssdk_config', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(params),
  });
  const body = await r.json().catch(() => ({}));
  return { errMsg: body.errMsg || ('config:fail ' + r.status) };
}

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
    await page.exposeFunction('__phoneJsConfig', phoneJsConfig);
    await page.addInitScript(BRIDGE);
    const out = { jssdk_requests: 0, blocked: [] };
    // nothing else leaves the machine (routes registered later are tried first)
    await context.route(/^https?:\/\/(?!127\.0\.0\.1|localhost)/, (route) => {
      out.blocked.push(route.request().url());
      return route.abort();
    });
    await context.route(JSSDK, (route) => {
      out.jssdk_requests++;
      return route.fulfill({ status: 200, contentType: 'application/javascript', body: FAKE_JWEIXIN });
    });
    page.on('console', (m) => { if (m.type() === 'error') (out.console_errors = out.console_errors || []).push(m.text()); });
    const resp = await page.goto(confirmUrl);
    out.status = resp.status();
    out.csp = resp.headers()['content-security-policy'] || null;
    out.title = await page.title();
    out.lang = await page.locator('html').getAttribute('lang');
    out.intro = (await page.locator('#intro').textContent()).trim();
    const button = page.locator('#confirm-button');
    await button.waitFor();
    out.button_text = (await button.textContent()).trim();
    if (expect === 'unavailable') {
      await page.locator('#confirm-unavailable').waitFor({ state: 'visible' });
      out.unavailable_text = (await page.locator('#confirm-unavailable').textContent()).trim();
      out.button_disabled = await button.isDisabled();
      out.config_result = await page.evaluate(() => window.__wxConfigResult || null);
      await button.click({ force: true }).catch(() => {});
      out.invoked = await page.evaluate(() => window.__invoked || null);
      process.stdout.write(JSON.stringify(out) + '\n');
      await context.close();
      process.exit(0);
    }
    await page.waitForFunction(() => !document.getElementById('confirm-button').disabled);
    out.open_in_wechat_hidden = await page.locator('#open-in-wechat').isHidden();
    out.config_result = await page.evaluate(() => window.__wxConfigResult || null);
    out.config_calls = await page.evaluate(() => window.__wxConfigCalls || 0);
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
