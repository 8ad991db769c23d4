#!/usr/bin/env node
// Buys in the demo-style shop of a running paygate with a real browser:
// Debian's headless Chromium (/usr/bin/chromium) driven by playwright-core
// (no browser is ever downloaded). Run by tests/integration/test_browser.py.
//
//   node shop.js wechat|alipay --shop URL --sandbox URL --user-data-dir DIR [--product SKU]
//                [--lang zh-CN|en]   (the browser's language: Accept-Language)
//
// wechat: the shop's "QR code" link under "Pay with WeChat" -> our QR page
//   (inline SVG) -> a second page plays the phone: /wechat/scan?code_url=...
//   and presses #pay-button -> the first page moves on by itself (polling)
//   to the shop's return_url.
// alipay: the shop's "PC" link -> the sandbox cashier -> #pay-button -> the
//   return page shows the order PAID.
// Both end in the shop (return_url?order_no=...), which confirms the purchase
// and marks the course owned.
// Prints one JSON line with what it saw; exits 1 on failure.
'use strict';

const { chromium } = require('playwright-core');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const mode = process.argv[2];
const shopUrl = arg('shop');
const sandboxUrl = arg('sandbox');
const userDataDir = arg('user-data-dir');
const product = arg('product', 'course-c');
const lang = arg('lang', 'zh-CN');
const TIMEOUT = 30000;

async function buyWithWechat(context) {
  const page = await context.newPage();
  const out = { mode };
  await page.goto(shopUrl);
  const link = page.locator(
    `a[href*="product=${product}"][href*="channel=wechat"][href*="method=native"]`);
  if ((await link.count()) !== 1) throw new Error('no single WeChat QR link for ' + product);
  out.link_text = (await link.textContent()).trim();
  out.shop_has_wechat_column = (await page.content()).includes('Pay with WeChat');
  const shopPath = new URL(shopUrl).pathname;
  await Promise.all([
    page.waitForURL((u) => u.pathname !== shopPath && /\/pay\/[A-Za-z0-9]+$/.test(u.pathname)),
    link.click()]);
  out.qr_page_url = page.url();
  await page.locator('#qr svg').waitFor({ timeout: TIMEOUT });
  out.code_url = await page.locator('#qr').getAttribute('data-code');
  out.status_before = (await page.locator('#order-status').textContent()).trim();
  out.order_no = (await page.locator('#order-no').textContent()).trim();
  out.qr_title = await page.title();
  out.qr_lang = await page.locator('html').getAttribute('lang');
  out.qr_amount = (await page.locator('#amount').textContent()).trim();
  out.qr_payable_until = (await page.locator('#payable-until').textContent()).trim();
  out.qr_status_text = (await page.locator('#status-text').textContent()).trim();

  // the phone: scan the code, press Pay
  const phone = await context.newPage();
  await phone.goto(sandboxUrl + '/wechat/scan?code_url=' + encodeURIComponent(out.code_url));
  out.phone_amount = (await phone.locator('#total-fee').textContent()).trim();
  await Promise.all([phone.waitForLoadState(), phone.locator('#pay-button').click()]);
  await phone.locator('#paid').waitFor({ timeout: TIMEOUT });
  out.phone_paid_text = (await phone.locator('#paid').textContent()).trim();

  // the QR page moves on by itself: to return_url (the shop) once PAID
  const startedWaiting = Date.now();
  await page.waitForURL((u) => u.href !== out.qr_page_url, { timeout: TIMEOUT });
  out.moved_after_ms = Date.now() - startedWaiting;
  out.final_url = page.url();
  out.final_title = await page.title();
  await shopSeen(page, out);
  return out;
}

// The shop after the way back: the confirmation and the owned mark.
async function shopSeen(page, out) {
  await page.locator('#purchase-confirmed').waitFor({ timeout: TIMEOUT });
  out.shop_confirmed = (await page.locator('#purchase-confirmed').textContent()).trim();
  out.shop_buyer = (await page.locator('#buyer').textContent()).trim();
  out.shop_owned = (await page.locator(`tr[data-sku="${product}"] td.owned`).count()) === 1;
  out.shop_owned_count = await page.locator('td.owned').count();
}

async function buyWithAlipay(context) {
  const page = await context.newPage();
  const out = { mode };
  await page.goto(shopUrl);
  const link = page.locator(
    `a[href*="product=${product}"][href*="channel=alipay"][href*="method=page"]`);
  if ((await link.count()) !== 1) throw new Error('no single Alipay PC link for ' + product);
  await Promise.all([page.waitForURL(/gateway\.do/), link.click()]);
  out.cashier_url = page.url();
  out.out_trade_no = (await page.locator('#out-trade-no').textContent()).trim();
  out.total_amount = (await page.locator('#total-amount').textContent()).trim();
  await Promise.all([page.waitForURL(/\/return\/alipay\?/, { timeout: TIMEOUT }),
                     page.locator('#pay-button').click()]);
  out.return_url = page.url();
  out.order_no = (await page.locator('#order-no').textContent()).trim();
  out.status = (await page.locator('#order-status').textContent()).trim();
  out.final_title = await page.title();
  out.return_lang = await page.locator('html').getAttribute('lang');
  out.return_amount = (await page.locator('#amount').textContent()).trim();
  out.return_status_text = (await page.locator('#status-text').textContent()).trim();
  await Promise.all([page.waitForURL((u) => /\/shop$/.test(u.pathname)),
                     page.locator('#back-to-shop').click()]);
  out.final_url = page.url();
  await shopSeen(page, out);
  return out;
}

// card: the shop's "Card" link (channel=stripe) -> the sandbox's Stripe
// Checkout page -> "Pay" -> our return page (/return/stripe) -> back to the
// shop, which confirms the purchase once Stripe's event has arrived.
async function buyWithCard(context) {
  const page = await context.newPage();
  const out = { mode };
  await page.goto(shopUrl);
  out.shop_has_card_column = (await page.content()).includes('Pay by card');
  const link = page.locator(
    `a[href*="product=${product}"][href*="channel=stripe"][href*="method=checkout"]`);
  if ((await link.count()) !== 1) throw new Error('no single Card link for ' + product);
  out.link_text = (await link.textContent()).trim();
  await Promise.all([page.waitForURL(/\/stripe\/pay\/cs_/), link.click()]);
  out.checkout_url = page.url();
  out.checkout_amount = (await page.locator('#amount').textContent()).trim();
  await Promise.all([page.waitForURL(/\/return\/stripe\?/, { timeout: TIMEOUT }),
                     page.locator('#pay').click()]);
  out.return_url = page.url();
  out.order_no = (await page.locator('#order-no').textContent()).trim();
  await Promise.all([page.waitForURL((u) => /\/shop$/.test(u.pathname)),
                     page.locator('#back-to-shop').click()]);
  out.final_url = page.url();
  for (let i = 0; i < 50 && !(await page.locator('#purchase-confirmed').count()); i++) {
    await page.waitForTimeout(200);
    await page.reload();
  }
  await shopSeen(page, out);
  return out;
}

(async () => {
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      locale: lang,                 // sets Accept-Language
      ignoreHTTPSErrors: true,   // the sandbox's gateway uses its own test CA
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context.setDefaultTimeout(TIMEOUT);
    const out = mode === 'wechat' ? await buyWithWechat(context)
      : mode === 'card' ? await buyWithCard(context) : await buyWithAlipay(context);
    process.stdout.write(JSON.stringify(out) + '\n');
    await context.close();
    process.exit(0);
  } catch (e) {
    process.stderr.write('browser test failed: ' + (e && e.stack ? e.stack : e) + '\n');
    if (context) await context.close().catch(() => {});
    process.exit(1);
  }
})();
