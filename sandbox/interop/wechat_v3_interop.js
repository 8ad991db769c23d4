#!/usr/bin/env node
// Checks the sandbox's WeChat Pay API v3 side against two independent npm
// implementations: wechatpay-axios-plugin's v3 client (Decorator.jsonBased)
// signs every request and verifies every reply signature by
// Wechatpay-Serial; notifications are verified with its Rsa/Formatter and
// decrypted with both its Aes.AesGcm and wechatpay-node-v3's decipher_gcm;
// wechatpay-node-v3's getSN reads the platform certificate's serial.
//
//   node wechat_v3_interop.js run --base http://127.0.0.1:P --key MERCHANT_KEY.pem
//
// Reads the rest from GET /_sandbox/wechat_v3/config. Prints one JSON object.
'use strict';

const fs = require('fs');
const http = require('http');
const crypto = require('crypto');
const {
  Decorator, Rsa, Aes, Formatter,
} = require('wechatpay-axios-plugin');
const WxPay = require('wechatpay-node-v3');

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

// A merchant notify endpoint: answers 204, keeps headers and bodies.
function receiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204);
      res.end();
    });
  });
  const next = (pred, timeoutMs = 15000) => new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const hit = got.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() - started > timeoutMs) return reject(new Error('no notification arrived'));
      return setTimeout(tick, 50);
    };
    tick();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      server, next, url: `http://127.0.0.1:${server.address().port}/notify/wechat`,
    }));
  });
}

async function control(base, path, body) {
  const res = await fetch(base + path, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return res.json();
}

async function call(client, method, path, data) {
  try {
    const res = await client.request({ method, url: path, data });
    return { ok: true, status: res.status, data: res.data };
  } catch (err) {
    return {
      ok: false,
      status: err.response && err.response.status,
      message: err.message,
      data: err.response && err.response.data,
    };
  }
}

// The checks a merchant makes on a notification, with the npm code only.
function openNotification(note, publicKeys, apiV3Key, nodeV3) {
  const h = note.headers;
  const key = publicKeys[h['wechatpay-serial']];
  const verified = key !== undefined && Rsa.verify(
    Formatter.response(h['wechatpay-timestamp'], h['wechatpay-nonce'], note.body),
    h['wechatpay-signature'],
    key,
  );
  const env = JSON.parse(note.body);
  const r = env.resource;
  const plain = Aes.AesGcm.decrypt(r.ciphertext, apiV3Key, r.nonce, r.associated_data);
  const viaNodeV3 = nodeV3.decipher_gcm(r.ciphertext, r.associated_data, r.nonce, apiV3Key);
  return {
    verified,
    serial: h['wechatpay-serial'],
    event_type: env.event_type,
    resource_type: env.resource_type,
    algorithm: r.algorithm,
    original_type: r.original_type,
    resource: JSON.parse(plain),
    same_with_node_v3: JSON.stringify(viaNodeV3) === JSON.stringify(JSON.parse(plain)),
  };
}

async function run(args) {
  const base = args.base;
  const cfg = await control(base, '/_sandbox/wechat_v3/config');
  const privateKey = fs.readFileSync(args.key);
  const wechatpayPub = fs.readFileSync(cfg.files.wechatpay_public_key);
  const platformPem = fs.readFileSync(cfg.files.platform_cert);
  const platformPub = crypto.createPublicKey(platformPem);
  const client = (certs, key = privateKey) => Decorator.jsonBased({
    mchid: cfg.mchid, serial: cfg.merchant_serial, privateKey: key, certs, baseURL: `${base}/`,
  });
  const pubkeyClient = client({ [cfg.pubkey_id]: wechatpayPub });
  const nodeV3 = new WxPay({
    appid: cfg.appid, mchid: cfg.mchid, publicKey: platformPem, privateKey, key: cfg.api_v3_key,
  });
  const keys = { [cfg.pubkey_id]: wechatpayPub, [cfg.platform_serial]: platformPub };
  const rec = await receiver();
  const no = args['out-trade-no'] || 'v3interop0001';
  const out = { config: cfg };
  try {
    const order = (n, extra = {}) => ({
      appid: cfg.appid,
      mchid: cfg.mchid,
      description: '课程 v3 interop',
      out_trade_no: n,
      notify_url: rec.url,
      amount: { total: 888, currency: 'CNY' },
      ...extra,
    });
    out.native = await call(pubkeyClient, 'POST', 'v3/pay/transactions/native', order(no));
    out.jsapi = await call(pubkeyClient, 'POST', 'v3/pay/transactions/jsapi',
      order(`${no}j`, { payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' } }));
    out.h5 = await call(pubkeyClient, 'POST', 'v3/pay/transactions/h5',
      order(`${no}h`, { scene_info: { payer_client_ip: '203.0.113.7', h5_info: { type: 'Wap' } } }));
    out.query_before = await call(pubkeyClient, 'GET',
      `v3/pay/transactions/out-trade-no/${no}?mchid=${cfg.mchid}`);
    out.query_missing = await call(pubkeyClient, 'GET',
      `v3/pay/transactions/out-trade-no/${no}x?mchid=${cfg.mchid}`);
    // WeChat closes no order within 5 minutes of its creation: refused, then aged
    out.close_too_early = await call(pubkeyClient, 'POST', `v3/pay/transactions/out-trade-no/${no}h/close`,
      { mchid: cfg.mchid });
    await control(base, '/_sandbox/wechat/age', { out_trade_no: `${no}h`, seconds: 400 });
    out.close = await call(pubkeyClient, 'POST', `v3/pay/transactions/out-trade-no/${no}h/close`,
      { mchid: cfg.mchid });
    // a request signed with another key is refused by the sandbox
    const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    out.other_key = await call(client({ [cfg.pubkey_id]: wechatpayPub }, otherKey), 'GET',
      `v3/pay/transactions/out-trade-no/${no}?mchid=${cfg.mchid}`);

    await control(base, '/_sandbox/wechat/pay', { out_trade_no: no });
    const paid = await rec.next((n) => n.body.includes('TRANSACTION.SUCCESS'));
    out.notify_paid = openNotification(paid, keys, cfg.api_v3_key, nodeV3);
    const tampered = paid.body.replace('"summary":"支付成功"', '"summary":"支付成功 "');
    out.tampered_changed = tampered !== paid.body;
    out.notify_tampered_verifies = Rsa.verify(Formatter.response(paid.headers['wechatpay-timestamp'],
      paid.headers['wechatpay-nonce'], tampered), paid.headers['wechatpay-signature'], wechatpayPub);
    out.query_after = await call(pubkeyClient, 'GET',
      `v3/pay/transactions/out-trade-no/${no}?mchid=${cfg.mchid}`);

    out.refund = await call(pubkeyClient, 'POST', 'v3/refund/domestic/refunds', {
      out_trade_no: no,
      out_refund_no: `${no}r1`,
      reason: '课程退款',
      notify_url: rec.url,
      amount: { refund: 100, total: 888, currency: 'CNY' },
    });
    const refunded = await rec.next((n) => n.body.includes('REFUND.'));
    out.notify_refund = openNotification(refunded, keys, cfg.api_v3_key, nodeV3);
    out.refund_query = await call(pubkeyClient, 'GET', `v3/refund/domestic/refunds/${no}r1`);

    out.certificates = await call(pubkeyClient, 'GET', 'v3/certificates');
    const enc = out.certificates.data.data[0].encrypt_certificate;
    const pem = Aes.AesGcm.decrypt(enc.ciphertext, cfg.api_v3_key, enc.nonce, enc.associated_data);
    out.certificate_pem_matches = pem.trim() === platformPem.toString('utf8').trim();
    out.certificate_serial_node_v3 = nodeV3.getSN(Buffer.from(pem));

    // platform-certificate mode: the client knows the platform certificate
    await control(base, '/_sandbox/wechat_v3/config', { mode: 'platform' });
    try {
      out.platform_query = await call(client({ [cfg.platform_serial]: platformPub }), 'GET',
        `v3/pay/transactions/out-trade-no/${no}?mchid=${cfg.mchid}`);
      out.platform_query_pubkey_client = await call(pubkeyClient, 'GET',
        `v3/pay/transactions/out-trade-no/${no}?mchid=${cfg.mchid}`);
      await control(base, '/_sandbox/wechat_v3/notify', { out_trade_no: no });
      const again = await rec.next((n) => n !== paid && n.body.includes('TRANSACTION.SUCCESS')
        && n.headers['wechatpay-serial'] === cfg.platform_serial);
      out.notify_platform = openNotification(again, keys, cfg.api_v3_key, nodeV3);
    } finally {
      await control(base, '/_sandbox/wechat_v3/config', { mode: 'pubkey' });
    }
  } finally {
    rec.server.close();
  }
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args._[0] !== 'run') throw new Error(`unknown command ${args._[0]}`);
  process.stdout.write(`${JSON.stringify(await run(args))}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
