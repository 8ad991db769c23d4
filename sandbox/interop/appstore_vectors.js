// Signs the App Store JWS vectors of tests/unit/test_appstore.c with `jose`
// (an implementation independent of src/), over the test PKI made by
// tests/fixtures/appstore/make_certs.py, and checks every "good" vector with
// Apple's official @apple/app-store-server-library (SignedDataVerifier given
// the test root) and every "bad" one is refused by it where it judges that.
// Run: node sandbox/interop/appstore_vectors.js  (from the repository root or here)
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const jose = require('jose');
const apple = require('@apple/app-store-server-library');

const FIX = path.join(__dirname, '..', '..', 'tests', 'fixtures', 'appstore');
const OUT = path.join(FIX, 'vectors');
const BUNDLE = 'com.example.shop';
const APP_ID = 1234567890;
const ENV = 'Production';
const SIGNED_DATE = 1767225600000 + 3600 * 1000; // 2026-01-01T01:00:00Z, fixed

function b64der(stem) {
  const pem = fs.readFileSync(path.join(FIX, stem + '.pem'), 'utf8');
  return new crypto.X509Certificate(pem).raw.toString('base64');
}
function key(stem) {
  return crypto.createPrivateKey(fs.readFileSync(path.join(FIX, stem + '.key.pem')));
}
const CHAINS = {
  good: { leaf: 'leaf', chain: ['leaf', 'inter', 'root'] },
  other_root: { leaf: 'other_leaf', chain: ['other_leaf', 'other_inter', 'other_root'] },
  // the attacker's chain carrying our root as its third element
  other_root_claims_ours: { leaf: 'other_leaf', chain: ['other_leaf', 'other_inter', 'root'] },
  leaf_nooid: { leaf: 'leaf_nooid', chain: ['leaf_nooid', 'inter', 'root'] },
  inter_nooid: { leaf: 'leaf_under_nooid', chain: ['leaf_under_nooid', 'inter_nooid', 'root'] },
  inter_notca: { leaf: 'leaf_under_notca', chain: ['leaf_under_notca', 'inter_notca', 'root'] },
  expired: { leaf: 'leaf_expired', chain: ['leaf_expired', 'inter', 'root'] },
  short_chain: { leaf: 'leaf', chain: ['leaf', 'inter'] },
};

async function sign(payload, which) {
  const c = CHAINS[which];
  return new jose.CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', x5c: c.chain.map(b64der) })
    .sign(key(c.leaf));
}

function transaction(over) {
  return Object.assign({
    transactionId: '2000000123456789', originalTransactionId: '2000000123456789',
    bundleId: BUNDLE, productId: 'com.example.shop.course1', purchaseDate: 1767225000000,
    originalPurchaseDate: 1767225000000, quantity: 1, type: 'Non-Consumable',
    inAppOwnershipType: 'PURCHASED', signedDate: SIGNED_DATE, environment: ENV,
    transactionReason: 'PURCHASE', storefront: 'CHN', storefrontId: '143465', price: 98000,
    currency: 'CNY', appAccountToken: '7f1c2a52-2c8e-4a4e-9d55-0f3c6f0b9a11',
  }, over);
}

async function notification(type, tx, over, which) {
  const p = Object.assign({
    notificationType: type, notificationUUID: '6a2c4b5e-1f0d-4c1b-8b1e-3f2a9c7d5e01', version: '2.0',
    signedDate: SIGNED_DATE,
    data: { appAppleId: APP_ID, bundleId: BUNDLE, bundleVersion: '1', environment: ENV,
            signedTransactionInfo: tx === null ? undefined : await sign(tx, 'good') },
  }, over || {});
  return JSON.stringify({ signedPayload: await sign(p, which || 'good') });
}

function tamper(jws) {   // same header and signature, another payload
  const [h, , s] = jws.split('.');
  const body = Buffer.from(JSON.stringify(transaction({ price: 1000 }))).toString('base64url');
  return [h, body, s].join('.');
}

function unsignedAlg(alg, payload) {
  const h = Buffer.from(JSON.stringify({ alg, x5c: CHAINS.good.chain.map(b64der) })).toString('base64url');
  const b = Buffer.from(JSON.stringify(payload)).toString('base64url');
  if (alg === 'none') return `${h}.${b}.`;
  const mac = crypto.createHmac('sha256', b64der('leaf')).update(`${h}.${b}`).digest('base64url');
  return `${h}.${b}.${mac}`;
}

function derSig(jws) {   // the same signature in ASN.1 DER instead of JOSE r||s
  const [h, b, s] = jws.split('.');
  const raw = Buffer.from(s, 'base64url');
  const int = (x) => { let i = 0; while (i < x.length - 1 && x[i] === 0) i++; x = x.subarray(i);
    if (x[0] & 0x80) x = Buffer.concat([Buffer.from([0]), x]); return Buffer.concat([Buffer.from([2, x.length]), x]); };
  const seq = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))]);
  return [h, b, Buffer.concat([Buffer.from([0x30, seq.length]), seq]).toString('base64url')].join('.');
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const v = {};
  const tx = transaction();
  v['tx_good.jws'] = await sign(tx, 'good');
  v['tx_refunded.jws'] = await sign(transaction({ revocationDate: 1767300000000, revocationReason: 0 }), 'good');
  v['tx_other_bundle.jws'] = await sign(transaction({ bundleId: 'com.attacker.app' }), 'good');
  v['tx_sandbox_env.jws'] = await sign(transaction({ environment: 'Sandbox' }), 'good');
  v['tx_other_root.jws'] = await sign(tx, 'other_root');
  v['tx_other_root_claims_ours.jws'] = await sign(tx, 'other_root_claims_ours');
  v['tx_leaf_nooid.jws'] = await sign(tx, 'leaf_nooid');
  v['tx_inter_nooid.jws'] = await sign(tx, 'inter_nooid');
  v['tx_inter_notca.jws'] = await sign(tx, 'inter_notca');
  v['tx_expired.jws'] = await sign(tx, 'expired');
  v['tx_short_chain.jws'] = await sign(tx, 'short_chain');
  v['tx_tampered.jws'] = tamper(v['tx_good.jws']);
  v['tx_alg_none.jws'] = unsignedAlg('none', tx);
  v['tx_alg_hs256.jws'] = unsignedAlg('HS256', tx);
  v['tx_der_sig.jws'] = derSig(v['tx_good.jws']);
  v['notify_one_time_charge.json'] = await notification('ONE_TIME_CHARGE', tx);
  v['notify_refund.json'] = await notification('REFUND',
    transaction({ revocationDate: 1767300000000, revocationReason: 0 }),
    { notificationUUID: '6a2c4b5e-1f0d-4c1b-8b1e-3f2a9c7d5e02' });
  v['notify_test.json'] = await notification('TEST', null, { notificationUUID: '6a2c4b5e-1f0d-4c1b-8b1e-3f2a9c7d5e03' });
  v['notify_other_bundle.json'] = await notification('ONE_TIME_CHARGE', tx,
    { data: { appAppleId: APP_ID, bundleId: 'com.attacker.app', environment: ENV,
              signedTransactionInfo: v['tx_good.jws'] } });
  v['notify_other_app.json'] = await notification('ONE_TIME_CHARGE', tx,
    { data: { appAppleId: 999, bundleId: BUNDLE, environment: ENV, signedTransactionInfo: v['tx_good.jws'] } });
  v['notify_inner_other_root.json'] = await notification('ONE_TIME_CHARGE', tx,
    { data: { appAppleId: APP_ID, bundleId: BUNDLE, environment: ENV, signedTransactionInfo: v['tx_other_root.jws'] } });
  v['notify_outer_other_root.json'] = await notification('ONE_TIME_CHARGE', tx, {}, 'other_root');
  for (const [f, body] of Object.entries(v)) fs.writeFileSync(path.join(OUT, f), body);

  // The official library, trusting only the test root, judges the same vectors.
  const root = fs.readFileSync(path.join(FIX, 'root.der'));
  const verifier = new apple.SignedDataVerifier([root], false, apple.Environment.PRODUCTION, BUNDLE, APP_ID);
  const expectOk = ['tx_good.jws', 'tx_refunded.jws'];
  const expectBad = ['tx_other_bundle.jws', 'tx_sandbox_env.jws', 'tx_other_root.jws',
    'tx_other_root_claims_ours.jws', 'tx_leaf_nooid.jws', 'tx_inter_nooid.jws', 'tx_inter_notca.jws',
    'tx_expired.jws', 'tx_short_chain.jws', 'tx_tampered.jws', 'tx_alg_none.jws', 'tx_alg_hs256.jws'];
  let failed = 0;
  for (const f of expectOk) {
    try { await verifier.verifyAndDecodeTransaction(v[f]); console.log(`ok   apple accepts ${f}`); }
    catch (e) { failed++; console.log(`FAIL apple refuses ${f}: ${e.status} ${e.message}`); }
  }
  for (const f of expectBad) {
    try { await verifier.verifyAndDecodeTransaction(v[f]); failed++; console.log(`FAIL apple accepts ${f}`); }
    catch (e) { console.log(`ok   apple refuses ${f} (status ${e.status})`); }
  }
  for (const f of ['notify_one_time_charge.json', 'notify_refund.json', 'notify_test.json']) {
    try {
      const n = await verifier.verifyAndDecodeNotification(JSON.parse(v[f]).signedPayload);
      if (n.data && n.data.signedTransactionInfo) await verifier.verifyAndDecodeTransaction(n.data.signedTransactionInfo);
      console.log(`ok   apple accepts ${f}`);
    } catch (e) { failed++; console.log(`FAIL apple refuses ${f}: ${e.status} ${e.message}`); }
  }
  for (const f of ['notify_other_bundle.json', 'notify_other_app.json', 'notify_outer_other_root.json']) {
    try { await verifier.verifyAndDecodeNotification(JSON.parse(v[f]).signedPayload); failed++; console.log(`FAIL apple accepts ${f}`); }
    catch (e) { console.log(`ok   apple refuses ${f} (status ${e.status})`); }
  }
  if (failed) { console.log(`${failed} disagreement(s)`); process.exit(1); }
}
main().catch((e) => { console.error(e); process.exit(1); });
