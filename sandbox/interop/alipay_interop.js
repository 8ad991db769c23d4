#!/usr/bin/env node
// Checks the paygate sandbox against the official Alipay SDK (npm alipay-sdk).
// The SDK signs the requests and verifies the sandbox's response and
// notification signatures with its own code, so a mistake shared by the
// sandbox and paygate's C code cannot hide here.
//
// Usage:
//   node alipay_interop.js <command> --gateway URL --app-id ID \
//        --app-private-key FILE --alipay-public-key FILE [options]
//   (certificate mode: --app-cert F --alipay-cert F --alipay-root-cert F
//    instead of --alipay-public-key)
// Commands:
//   run           precreate + query through sdk.exec, pay through the sandbox
//                 control API, receive the notification on a local HTTP
//                 server and check it with checkNotifySignV2 (and a copy with
//                 a tampered total_amount), query again, build a page.pay URL.
//                 Prints one JSON object.
//   exec          --method M --biz JSON [--notify-url U]: one sdk.exec call;
//                 prints {"ok":true,"result":...} or {"ok":false,"error":...}.
//   check-notify  reads a JSON object of form fields on stdin; prints
//                 {"valid": checkNotifySignV2, "valid_decoding": checkNotifySign}.
//   page-url      --out-trade-no X --amount A --subject S [--return-url U]
//                 [--notify-url U] [--method alipay.trade.page.pay]: prints the
//                 GET URL built by sdk.pageExecute.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const { AlipaySdk } = require('alipay-sdk');

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const key = a.slice(2);
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) {
        out[key] = true;
      } else {
        out[key] = value;
        i++;
      }
    } else {
      out._.push(a);
    }
  }
  return out;
}

function need(args, key) {
  if (!args[key] || args[key] === true) {
    throw new Error(`missing --${key}`);
  }
  return args[key];
}

function makeSdk(args) {
  const privateKey = fs.readFileSync(need(args, 'app-private-key'), 'ascii');
  const keyType = privateKey.includes('BEGIN RSA PRIVATE KEY') ? 'PKCS1' : 'PKCS8';
  const keys = args['app-cert']
    // certificate mode: the SDK computes app_cert_sn / alipay_root_cert_sn
    // itself and takes Alipay's key from the certificate
    ? { appCertPath: need(args, 'app-cert'), alipayPublicCertPath: need(args, 'alipay-cert'),
        alipayRootCertPath: need(args, 'alipay-root-cert') }
    : { alipayPublicKey: fs.readFileSync(need(args, 'alipay-public-key'), 'ascii') };
  return new AlipaySdk({
    appId: need(args, 'app-id'),
    privateKey,
    keyType,
    ...keys,
    gateway: need(args, 'gateway'),
    timeout: 10000,
  });
}

function sandboxBase(args) {
  return new URL(need(args, 'gateway')).origin;
}

async function control(args, path, body) {
  const res = await fetch(sandboxBase(args) + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`sandbox ${path} -> ${res.status}: ${text}`);
  }
  return JSON.parse(text);
}

// A one-shot notification receiver: answers "success" and resolves with the
// decoded form fields of every POST it receives.
function startReceiver() {
  const received = [];
  let wake = null;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const fields = Object.fromEntries(new URLSearchParams(raw));
      received.push({ contentType: req.headers['content-type'], raw, fields });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('success');
      if (wake) wake();
    });
  });
  return new Promise(resolve => {
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}/alipay/notify`;
      resolve({
        url,
        received,
        close: () => new Promise(r => server.close(r)),
        waitFor: (n, ms) => new Promise((ok, fail) => {
          const deadline = setTimeout(() => fail(new Error('no notification received')), ms);
          const check = () => {
            if (received.length >= n) {
              clearTimeout(deadline);
              ok(received[n - 1]);
            } else {
              wake = check;
            }
          };
          check();
        }),
      });
    });
  });
}

async function cmdRun(args) {
  const sdk = makeSdk(args);
  const outTradeNo = args['out-trade-no'] || `interop_${Date.now()}`;
  const receiver = await startReceiver();
  const report = { out_trade_no: outTradeNo, notify_url: receiver.url };
  try {
    report.precreate = await sdk.exec('alipay.trade.precreate', {
      notify_url: receiver.url,
      bizContent: { out_trade_no: outTradeNo, total_amount: '88.00', subject: '互操作测试 interop & co' },
    }, { validateSign: true });
    // Alipay knows a precreate trade only once its qr_code was scanned.
    report.scan = await control(args, '/_sandbox/alipay/scan', { out_trade_no: outTradeNo });
    report.query_before = await sdk.exec('alipay.trade.query', {
      bizContent: { out_trade_no: outTradeNo },
    }, { validateSign: true });
    report.pay = await control(args, '/_sandbox/pay', { out_trade_no: outTradeNo });
    const note = await receiver.waitFor(1, 15000);
    report.notification = note.fields;
    report.notification_content_type = note.contentType;
    report.notify_check_v2 = sdk.checkNotifySignV2(note.fields);
    const tampered = { ...note.fields, total_amount: '88.01' };
    report.tampered_check_v2 = sdk.checkNotifySignV2(tampered);
    report.tampered_check = sdk.checkNotifySign(tampered);
    report.query_after = await sdk.exec('alipay.trade.query', {
      bizContent: { out_trade_no: outTradeNo },
    }, { validateSign: true });
    report.query_missing = await sdk.exec('alipay.trade.query', {
      bizContent: { out_trade_no: `${outTradeNo}_missing` },
    }, { validateSign: true });
    report.page_url = sdk.pageExecute('alipay.trade.page.pay', 'GET', {
      bizContent: {
        out_trade_no: `${outTradeNo}_page`,
        product_code: 'FAST_INSTANT_TRADE_PAY',
        subject: '页面支付 page pay',
        total_amount: '12.34',
      },
      returnUrl: 'http://127.0.0.1:9/return',
      notifyUrl: receiver.url,
    });
  } finally {
    await receiver.close();
  }
  return report;
}

async function cmdExec(args) {
  const sdk = makeSdk(args);
  const params = { bizContent: JSON.parse(need(args, 'biz')) };
  if (args['notify-url']) params.notify_url = args['notify-url'];
  try {
    const result = await sdk.exec(need(args, 'method'), params, { validateSign: true });
    const sns = { app_cert_sn: sdk.config.appCertSn, alipay_cert_sn: sdk.config.alipayCertSn,
                  alipay_root_cert_sn: sdk.config.alipayRootCertSn };
    return { ok: true, result, sns };
  } catch (err) {
    return { ok: false, error: String(err && err.message), name: err && err.name };
  }
}

async function cmdCheckNotify(args) {
  const sdk = makeSdk(args);
  const fields = JSON.parse(fs.readFileSync(0, 'utf8'));
  let validDecoding;
  try {
    validDecoding = sdk.checkNotifySign({ ...fields });
  } catch (err) {
    validDecoding = `error: ${err.message}`;
  }
  return { valid: sdk.checkNotifySignV2({ ...fields }), valid_decoding: validDecoding };
}

async function cmdPageUrl(args) {
  const sdk = makeSdk(args);
  const params = {
    bizContent: {
      out_trade_no: need(args, 'out-trade-no'),
      product_code: args['product-code'] || 'FAST_INSTANT_TRADE_PAY',
      subject: need(args, 'subject'),
      total_amount: need(args, 'amount'),
    },
  };
  if (args['return-url']) params.returnUrl = args['return-url'];
  if (args['notify-url']) params.notifyUrl = args['notify-url'];
  return sdk.pageExecute(args.method || 'alipay.trade.page.pay', 'GET', params);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cmd = args._[0];
  const commands = { run: cmdRun, exec: cmdExec, 'check-notify': cmdCheckNotify, 'page-url': cmdPageUrl };
  if (!commands[cmd]) {
    process.stderr.write('usage: node alipay_interop.js run|exec|check-notify|page-url --gateway URL ...\n');
    process.exit(2);
  }
  const out = await commands[cmd](args);
  process.stdout.write((typeof out === 'string' ? out : JSON.stringify(out, null, 1)) + '\n');
}

main().catch(err => {
  process.stderr.write(`alipay_interop: ${err.stack || err}\n`);
  process.exit(1);
});
