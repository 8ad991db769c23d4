// `jose` verifies JWTs that paygate made: the Google service-account
// assertion (RS256) and the App Store Server API token (ES256). Input on
// stdin: [{"jwt", "spki" (PEM), "alg", "issuer", "audience"}...]; output: one
// JSON line per item {"ok", "error"?, "claims"?}.
'use strict';
const jose = require('jose');

async function main() {
  const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  for (const it of items) {
    try {
      const key = await jose.importSPKI(it.spki, it.alg);
      const { payload, protectedHeader } = await jose.jwtVerify(it.jwt, key,
        { algorithms: [it.alg], issuer: it.issuer, audience: it.audience, maxTokenAge: '1h' });
      console.log(JSON.stringify({ ok: true, claims: payload, header: protectedHeader }));
    } catch (e) { console.log(JSON.stringify({ ok: false, error: String(e.code || e.message) })); }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
