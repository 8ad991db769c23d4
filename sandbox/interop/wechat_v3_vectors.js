#!/usr/bin/env node
// Produces the WeChat Pay API v3 test vectors of tests/fixtures/wechat_v3
// (vectors.json on stdout) with two independent npm implementations:
// wechatpay-axios-plugin (Formatter, Rsa, Aes.AesGcm) and wechatpay-node-v3
// (Pay: getSignature, sign, getSN, decipher_gcm, verifySign's message).
// Every vector one library makes is checked with the other before it is
// written, so a vector is never only one implementation's word.
//
//   node wechat_v3_vectors.js FIXTURE_DIR > FIXTURE_DIR/vectors.json
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Rsa, Aes, Formatter } = require('wechatpay-axios-plugin');
const WxPay = require('wechatpay-node-v3');

const dir = process.argv[2];
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');

const MCHID = '1900009191';
const APPID = 'wxd930ea5d5a258f4f';
const API_V3_KEY = 'a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb';   // 32 ASCII bytes
const PUB_KEY_ID = 'PUB_KEY_ID_0119000091912026112400000000000001';
const TS = 1795522500;   // 2026-11-24 12:15:00 UTC, the unit tests' clock

const merchantKey = Rsa.from(`file://${path.join(dir, 'merchant_key.pem')}`);
const wechatpayKey = Rsa.from(`file://${path.join(dir, 'wechatpay_key.pem')}`);
const wechatpayPub = Rsa.from(`file://${path.join(dir, 'wechatpay_pub.pem')}`, Rsa.KEY_TYPE_PUBLIC);
const platformKey = Rsa.from(`file://${path.join(dir, 'platform_key.pem')}`);
const platformCertPem = read('platform_cert.pem');
const platformPub = crypto.createPublicKey(platformCertPem);

// wechatpay-node-v3 as the merchant (its publicKey is the merchant cert).
const nodeV3 = new WxPay({
  appid: APPID,
  mchid: MCHID,
  publicKey: Buffer.from(read('merchant_cert.pem')),
  privateKey: Buffer.from(read('merchant_key.pem')),
  key: API_V3_KEY,
});
// And with the platform certificate, only for getSN.
const nodeV3Platform = new WxPay({
  appid: APPID, mchid: MCHID, publicKey: Buffer.from(platformCertPem), privateKey: Buffer.from(read('platform_key.pem')),
});
const merchantSerial = nodeV3.getSN();
const platformSerial = nodeV3Platform.getSN();

function requestVector(method, uri, nonce, body) {
  const message = Formatter.request(method, uri, TS, nonce, body);
  const signature = Rsa.sign(message, merchantKey);
  const nodeSig = nodeV3.getSignature(method, nonce, TS, uri, body === '' ? undefined : body);
  assert.strictEqual(nodeSig, signature, `${method} ${uri}: the two libraries disagree`);
  return {
    method, uri, timestamp: TS, nonce, body, message, signature,
    authorization: Formatter.authorization(MCHID, nonce, signature, TS, merchantSerial.toUpperCase()),
  };
}

// A reply or notification signed by WeChat Pay with the key of `serial`.
function signed(body, nonce, key, pub, serial, ts = TS) {
  const message = Formatter.response(ts, nonce, body);
  const signature = Rsa.sign(message, key);
  // wechatpay-node-v3's verifySign builds the same message.
  const v = crypto.createVerify('RSA-SHA256');
  v.update(`${ts}\n${nonce}\n${body}\n`);
  assert.ok(v.verify(pub, signature, 'base64'));
  assert.ok(Rsa.verify(message, signature, pub));
  return {
    timestamp: String(ts), nonce, signature, serial, body,
  };
}

function encrypt(plaintext, nonce, aad) {
  const ciphertext = Aes.AesGcm.encrypt(plaintext, API_V3_KEY, nonce, aad);
  const back = nodeV3.decipher_gcm(ciphertext, aad, nonce, API_V3_KEY);
  assert.strictEqual(typeof back === 'string' ? back : JSON.stringify(back),
    typeof back === 'string' ? plaintext : JSON.stringify(JSON.parse(plaintext)));
  return ciphertext;
}

function notification(id, eventType, originalType, plaintext, nonce, aad, mode) {
  const envelope = {
    id,
    create_time: '2026-11-24T20:15:00+08:00',
    resource_type: 'encrypt-resource',
    event_type: eventType,
    summary: eventType.startsWith('REFUND') ? '退款成功' : '支付成功',
    resource: {
      original_type: originalType,
      algorithm: 'AEAD_AES_256_GCM',
      ciphertext: encrypt(plaintext, nonce, aad),
      associated_data: aad,
      nonce,
    },
  };
  const body = JSON.stringify(envelope);
  const sig = mode === 'platform'
    ? signed(body, `n${id.slice(0, 20)}`, platformKey, platformPub, platformSerial.toUpperCase())
    : signed(body, `n${id.slice(0, 20)}`, wechatpayKey, wechatpayPub, PUB_KEY_ID);
  return { ...sig, plaintext };
}

const transaction = (over) => JSON.stringify({
  mchid: MCHID,
  appid: APPID,
  out_trade_no: 'P4a9cK2mZq8Xw3Rt',
  transaction_id: '4200001234202611240123456789',
  trade_type: 'NATIVE',
  trade_state: 'SUCCESS',
  trade_state_desc: '支付成功',
  bank_type: 'OTHERS',
  attach: '',
  success_time: '2026-11-24T20:14:05+08:00',
  payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
  amount: {
    total: 9900, payer_total: 9900, currency: 'CNY', payer_currency: 'CNY',
  },
  ...over,
});

const refund = (over) => JSON.stringify({
  mchid: MCHID,
  out_trade_no: 'P4a9cK2mZq8Xw3Rt',
  transaction_id: '4200001234202611240123456789',
  out_refund_no: 'R7hQ2mXc9LpZ4sVb',
  refund_id: '50300000382026112400000000001',
  refund_status: 'SUCCESS',
  success_time: '2026-11-24T20:16:00+08:00',
  user_received_account: '支付用户零钱',
  amount: {
    total: 9900, refund: 3300, payer_total: 9900, payer_refund: 3300,
  },
  ...over,
});

const postBody = JSON.stringify({
  appid: APPID,
  mchid: MCHID,
  description: '课程：C 语言入门',
  out_trade_no: 'P4a9cK2mZq8Xw3Rt',
  time_expire: '2026-11-24T20:30:00+08:00',
  notify_url: 'https://shop.example/notify/wechat',
  amount: { total: 9900, currency: 'CNY' },
});

const jsapiNonce = '5K8264ILTKCH16CQ2502SI8ZNMTM67VS';
const jsapiPackage = 'prepay_id=wx201410272009395522657a690389285100';
const jsapiMessage = Formatter.joinedByLineFeed(APPID, String(TS), jsapiNonce, jsapiPackage);
const jsapiSign = Rsa.sign(jsapiMessage, merchantKey);
assert.strictEqual(nodeV3.sign([APPID, String(TS), jsapiNonce, jsapiPackage, ''].join('\n')), jsapiSign);

const certsBody = JSON.stringify({
  data: [{
    serial_no: platformSerial.toUpperCase(),
    effective_time: '2026-11-24T20:00:00+08:00',
    expire_time: '2031-11-24T20:00:00+08:00',
    encrypt_certificate: {
      algorithm: 'AEAD_AES_256_GCM',
      nonce: '43f7d9b8a1c2',
      associated_data: 'certificate',
      ciphertext: encrypt(platformCertPem, '43f7d9b8a1c2', 'certificate'),
    },
  }],
});

const out = {
  comment: 'made by sandbox/interop/wechat_v3_vectors.js (wechatpay-axios-plugin 0.9.6, wechatpay-node-v3 2.2.1); do not edit',
  mchid: MCHID,
  appid: APPID,
  api_v3_key: API_V3_KEY,
  pubkey_id: PUB_KEY_ID,
  now: TS,
  merchant_serial_node_v3: merchantSerial,
  platform_serial_node_v3: platformSerial,
  request_post: requestVector('POST', '/v3/pay/transactions/native', 'Qm3ZtY8wL0pVx7Rb', postBody),
  request_get: requestVector('GET', '/v3/pay/transactions/out-trade-no/P4a9cK2mZq8Xw3Rt?mchid=1900009191', 'Gk2Pq9Lm7Zx4Tn1V', ''),
  jsapi: {
    appId: APPID, timeStamp: String(TS), nonceStr: jsapiNonce, package: jsapiPackage, signType: 'RSA', paySign: jsapiSign,
  },
  reply_native_pubkey: signed('{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}', 'r1Hn7Kc2', wechatpayKey, wechatpayPub, PUB_KEY_ID),
  reply_native_platform: signed('{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}', 'r2Hn7Kc2', platformKey, platformPub, platformSerial.toUpperCase()),
  reply_close_204: signed('', 'r3Close0', wechatpayKey, wechatpayPub, PUB_KEY_ID),
  reply_stale: signed('{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}', 'r4Stale0', wechatpayKey, wechatpayPub, PUB_KEY_ID, TS - 301),
  reply_edge: signed('{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}', 'r5Edge00', wechatpayKey, wechatpayPub, PUB_KEY_ID, TS + 300),
  reply_query_ok: signed(transaction({}), 'r6Query0', wechatpayKey, wechatpayPub, PUB_KEY_ID),
  reply_refund_ok: signed(JSON.stringify({
    refund_id: '50300000382026112400000000001',
    out_refund_no: 'R7hQ2mXc9LpZ4sVb',
    transaction_id: '4200001234202611240123456789',
    out_trade_no: 'P4a9cK2mZq8Xw3Rt',
    channel: 'ORIGINAL',
    user_received_account: '支付用户零钱',
    create_time: '2026-11-24T20:15:30+08:00',
    status: 'PROCESSING',
    funds_account: 'AVAILABLE',
    amount: {
      total: 9900, refund: 3300, payer_total: 9900, payer_refund: 3300, settlement_refund: 3300, settlement_total: 9900, discount_refund: 0, currency: 'CNY', refund_fee: 0,
    },
  }), 'r7Refund', wechatpayKey, wechatpayPub, PUB_KEY_ID),
  reply_certificates: signed(certsBody, 'r8Certs0', wechatpayKey, wechatpayPub, PUB_KEY_ID),
  reply_certificates_platform: signed(certsBody, 'r9Certs0', platformKey, platformPub, platformSerial.toUpperCase()),
  notify_paid_pubkey: notification('EV-2026112420150001', 'TRANSACTION.SUCCESS', 'transaction', transaction({}), 'fdasflkja484', 'transaction', 'pubkey'),
  notify_paid_platform: notification('EV-2026112420150002', 'TRANSACTION.SUCCESS', 'transaction', transaction({}), 'fdasflkja485', 'transaction', 'platform'),
  notify_paid_no_aad: notification('EV-2026112420150003', 'TRANSACTION.SUCCESS', 'transaction', transaction({}), 'fdasflkja486', '', 'pubkey'),
  notify_other_mch: notification('EV-2026112420150004', 'TRANSACTION.SUCCESS', 'transaction', transaction({ mchid: '1900000109' }), 'fdasflkja487', 'transaction', 'pubkey'),
  notify_other_app: notification('EV-2026112420150005', 'TRANSACTION.SUCCESS', 'transaction', transaction({ appid: 'wx0000000000000000' }), 'fdasflkja488', 'transaction', 'pubkey'),
  notify_real_amount: notification('EV-2026112420150006', 'TRANSACTION.SUCCESS', 'transaction',
    transaction({}).replace('"total":9900', '"total":99.0'), 'fdasflkja489', 'transaction', 'pubkey'),
  notify_no_txn_id: notification('EV-2026112420150007', 'TRANSACTION.SUCCESS', 'transaction', transaction({ transaction_id: undefined }), 'fdasflkja490', 'transaction', 'pubkey'),
  notify_refund: notification('EV-2026112420160001', 'REFUND.SUCCESS', 'refund', refund({}), 'rfnd0nonce01', 'refund', 'pubkey'),
  notify_refund_over: notification('EV-2026112420160002', 'REFUND.SUCCESS', 'refund',
    refund({ amount: { total: 9900, refund: 9901, payer_total: 9900, payer_refund: 9901 } }), 'rfnd0nonce02', 'refund', 'pubkey'),
  notify_refund_abnormal: notification('EV-2026112420160003', 'REFUND.ABNORMAL', 'refund', refund({ refund_status: 'ABNORMAL', success_time: undefined }), 'rfnd0nonce03', 'refund', 'pubkey'),
};
process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
