// Pub/Sub push OIDC tokens for tests/unit/test_googleplay.c, signed by `jose`
// (independent of src/), with a JWKS of the signing key; and the check that
// `jose` accepts the good one and refuses the rest against the same rules
// (issuer, audience, RS256, expiry; email claim checked by hand).
// Run: node sandbox/interop/googleplay_vectors.js
'use strict';
const fs = require('fs');
const path = require('path');
const jose = require('jose');

const OUT = path.join(__dirname, '..', '..', 'tests', 'fixtures', 'googleplay');
const AUD = 'https://shop.example.com/pay/notify/googleplay';
const EMAIL = 'play-rtdn@example-project.iam.gserviceaccount.com';
const NOW = 1767229200; // 2026-01-01T01:00:00Z, the unit tests' clock

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const { publicKey, privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const other = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  Object.assign(jwk, { kid: 'k1', alg: 'RS256', use: 'sig' });
  fs.writeFileSync(path.join(OUT, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  const claims = (over) => Object.assign({ iss: 'https://accounts.google.com', aud: AUD, email: EMAIL,
    email_verified: true, iat: NOW - 10, exp: NOW + 3590, sub: '1234567890' }, over || {});
  const sign = (c, key, kid) => new jose.SignJWT(c).setProtectedHeader({ alg: 'RS256', kid: kid || 'k1', typ: 'JWT' }).sign(key);
  const v = {
    'token_good.jwt': await sign(claims(), privateKey),
    'token_iss_bare.jwt': await sign(claims({ iss: 'accounts.google.com' }), privateKey),
    'token_other_key.jwt': await sign(claims(), other.privateKey),
    'token_other_aud.jwt': await sign(claims({ aud: 'https://attacker.example/' }), privateKey),
    'token_other_email.jwt': await sign(claims({ email: 'x@evil.iam.gserviceaccount.com' }), privateKey),
    'token_unverified_email.jwt': await sign(claims({ email_verified: false }), privateKey),
    'token_other_iss.jwt': await sign(claims({ iss: 'https://evil.example' }), privateKey),
    'token_expired.jwt': await sign(claims({ iat: NOW - 7200, exp: NOW - 3600 }), privateKey),
    'token_unknown_kid.jwt': await sign(claims(), privateKey, 'k9'),
  };
  const good = v['token_good.jwt'].split('.');
  v['token_alg_none.jwt'] = Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url') + '.' + good[1] + '.';
  v['token_tampered.jwt'] = [good[0], Buffer.from(JSON.stringify(claims({ email: 'x@evil.iam.gserviceaccount.com' }))).toString('base64url'), good[2]].join('.');
  for (const [f, t] of Object.entries(v)) fs.writeFileSync(path.join(OUT, f), t);

  const keyset = jose.createLocalJWKSet({ keys: [jwk] });
  let bad = 0;
  for (const [f, t] of Object.entries(v)) {
    let ok;
    try {
      const { payload } = await jose.jwtVerify(t, keyset, { issuer: ['https://accounts.google.com', 'accounts.google.com'],
        audience: AUD, algorithms: ['RS256'], currentDate: new Date(NOW * 1000) });
      ok = payload.email === EMAIL && payload.email_verified === true;
    } catch (e) { ok = false; }
    const want = f === 'token_good.jwt' || f === 'token_iss_bare.jwt';
    console.log(`${ok === want ? 'ok  ' : 'FAIL'} jose ${ok ? 'accepts' : 'refuses'} ${f}`);
    if (ok !== want) bad++;
  }
  if (bad) process.exit(1);
}
main().catch((e) => { console.error(e); process.exit(1); });
