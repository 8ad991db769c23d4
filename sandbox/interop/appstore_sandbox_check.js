// Apple's official @apple/app-store-server-library judges what the sandbox's
// Apple (sandbox/appstore_gw.py) signs. Input on stdin: JSON
// {"root": "<PEM>", "bundle_id", "app_apple_id", "environment",
//  "notifications": [body...], "transactions": [jws...]}; output: one JSON
// line per item {"kind", "ok", "status"}.
'use strict';
const crypto = require('crypto');
const apple = require('@apple/app-store-server-library');

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const root = new crypto.X509Certificate(input.root).raw;
  const env = input.environment === 'Sandbox' ? apple.Environment.SANDBOX : apple.Environment.PRODUCTION;
  const v = new apple.SignedDataVerifier([root], false, env, input.bundle_id, input.app_apple_id);
  for (const body of input.notifications) {
    try {
      const n = await v.verifyAndDecodeNotification(JSON.parse(body).signedPayload);
      if (n.data && n.data.signedTransactionInfo) await v.verifyAndDecodeTransaction(n.data.signedTransactionInfo);
      console.log(JSON.stringify({ kind: 'notification', ok: true, type: n.notificationType }));
    } catch (e) { console.log(JSON.stringify({ kind: 'notification', ok: false, status: e.status })); }
  }
  for (const jws of input.transactions) {
    try {
      const t = await v.verifyAndDecodeTransaction(jws);
      console.log(JSON.stringify({ kind: 'transaction', ok: true, id: t.transactionId }));
    } catch (e) { console.log(JSON.stringify({ kind: 'transaction', ok: false, status: e.status })); }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
