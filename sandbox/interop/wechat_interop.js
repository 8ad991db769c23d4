#!/usr/bin/env node
// Checks the sandbox's WeChat Pay v2 side against wechatpay-axios-plugin
// (an independent, maintained npm SDK): its v2 client signs every request and
// verifies every reply sign; its Hash.sign checks notifications; its
// AesEcb decrypts refund notifications.
//
//   node wechat_interop.js run --base http://127.0.0.1:P --tls-base https://127.0.0.1:Q \
//       --appid ID --mchid N --secret KEY --cert C --key K --ca CA [--out-trade-no X]
//   node wechat_interop.js check-notify --secret KEY   (notification XML on stdin)
//
// Prints one JSON object on stdout.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const {
  Decorator, Hash, Aes, Transformer,
} = require('wechatpay-axios-plugin');

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i].startsWith('--')) {
      out[argv[i].slice(2)] = argv[i + 1];
      i += 1;
    } else {
      out._.push(argv[i]);
    }
  }
  return out;
}

function checkNotify(xml, secret) {
  const fields = Transformer.toObject(xml);
  const type = fields.sign_type || (fields.sign && fields.sign.length === 64
    ? Hash.ALGO_HMAC_SHA256 : Hash.ALGO_MD5);
  const expected = Hash.sign(type, fields, secret);
  return { valid: Hash.equals(expected, fields.sign || ''), sign_type: type, fields };
}

function readStdin() {
  return new Promise((resolve) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

// A notify endpoint answering SUCCESS; resolves bodies as they arrive.
function receiver() {
  const bodies = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push({ body, contentType: req.headers['content-type'] });
      res.writeHead(200, { 'Content-Type': 'text/xml' });
      res.end('<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>');
      while (waiters.length) waiters.shift()();
    });
  });
  const next = (pred, timeoutMs = 15000) => new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const hit = bodies.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() - started > timeoutMs) return reject(new Error('no notification arrived'));
      waiters.push(check);
      setTimeout(() => { const i = waiters.indexOf(check); if (i >= 0) { waiters.splice(i, 1); check(); } }, 200);
      return undefined;
    };
    check();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      server, next, url: `http://127.0.0.1:${server.address().port}/notify/wechat`,
    }));
  });
}

async function control(base, path, body) {
  const res = await fetch(base + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return res.json();
}

async function call(client, path, data, config) {
  try {
    const res = await client.post(path, data, config);
    return { ok: true, data: res.data };
  } catch (err) {
    return { ok: false, code: err.code, message: err.message, data: err.response && err.response.data };
  }
}

async function run(args) {
  const ca = fs.readFileSync(args.ca);
  const client = Decorator.xmlBased({
    mchid: args.mchid,
    secret: args.secret,
    baseURL: `${args['tls-base']}/`,
    httpsAgent: new https.Agent({ ca }),
    merchant: { cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key), ca },
  });
  const rec = await receiver();
  const out = {};
  const outTradeNo = args['out-trade-no'] || 'wx_interop_1';
  try {
    const order = {
      appid: args.appid,
      mch_id: args.mchid,
      body: '课程 Course & more',
      out_trade_no: outTradeNo,
      total_fee: '888',
      spbill_create_ip: '127.0.0.1',
      notify_url: rec.url,
      trade_type: 'NATIVE',
      product_id: 'p1',
    };
    out.unifiedorder_md5 = await call(client, 'pay/unifiedorder', order);
    out.unifiedorder_hmac = await call(client, 'pay/unifiedorder', {
      ...order, out_trade_no: `${outTradeNo}_h`, sign_type: 'HMAC-SHA256',
    });
    out.query_before = await call(client, 'pay/orderquery', {
      appid: args.appid, mch_id: args.mchid, out_trade_no: outTradeNo,
    });
    out.query_missing = await call(client, 'pay/orderquery', {
      appid: args.appid, mch_id: args.mchid, out_trade_no: `${outTradeNo}_none`,
    });
    // the SDK must also refuse a reply signed with another key
    const wrongKey = Decorator.xmlBased({
      mchid: args.mchid, secret: 'x'.repeat(32), baseURL: `${args['tls-base']}/`, httpsAgent: new https.Agent({ ca }),
    });
    out.query_signed_with_other_key = await call(wrongKey, 'pay/orderquery', {
      appid: args.appid, mch_id: args.mchid, out_trade_no: outTradeNo,
    });

    await control(args.base, '/_sandbox/wechat/pay', { out_trade_no: outTradeNo });
    await control(args.base, '/_sandbox/wechat/pay', { out_trade_no: `${outTradeNo}_h` });
    const md5Note = await rec.next((b) => b.body.includes(`[${outTradeNo}]`));
    const hmacNote = await rec.next((b) => b.body.includes(`[${outTradeNo}_h]`));
    out.notify_md5 = checkNotify(md5Note.body, args.secret);
    out.notify_hmac = checkNotify(hmacNote.body, args.secret);
    out.notify_content_type = md5Note.contentType;
    const tampered = md5Note.body.replace('<total_fee>888</total_fee>', '<total_fee>887</total_fee>');
    out.tampered_changed = tampered !== md5Note.body;
    out.notify_tampered = checkNotify(tampered, args.secret).valid;
    out.query_after = await call(client, 'pay/orderquery', {
      appid: args.appid, mch_id: args.mchid, out_trade_no: outTradeNo, sign_type: 'HMAC-SHA256',
    });

    const refund = {
      appid: args.appid,
      mch_id: args.mchid,
      out_trade_no: outTradeNo,
      out_refund_no: `${outTradeNo}_r1`,
      total_fee: '888',
      refund_fee: '100',
      notify_url: rec.url,
    };
    out.refund = await call(client, 'secapi/pay/refund', refund, { security: true });
    const refundNote = await rec.next((b) => b.body.includes('req_info'));
    const outer = Transformer.toObject(refundNote.body);
    const aesKey = crypto.createHash('md5').update(args.secret).digest('hex').toLowerCase();
    out.refund_notify_outer = outer;
    out.refund_notify_inner = Transformer.toObject(Aes.AesEcb.decrypt(outer.req_info, aesKey));
    out.refundquery = await call(client, 'pay/refundquery', {
      appid: args.appid, mch_id: args.mchid, out_refund_no: `${outTradeNo}_r1`,
    });
  } finally {
    rec.server.close();
  }
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const command = args._[0];
  let result;
  if (command === 'run') {
    result = await run(args);
  } else if (command === 'check-notify') {
    result = checkNotify(await readStdin(), args.secret);
  } else {
    throw new Error(`unknown command ${command}`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
