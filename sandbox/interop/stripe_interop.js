#!/usr/bin/env node
// Checks the sandbox's Stripe (and paygate's Stripe requests) with the
// official `stripe` npm package (pinned in package.json), an implementation
// independent of both. One JSON command on argv[2], one JSON result on stdout.
//
//   {"op":"verify", "body", "header", "secret", "tolerance"?}
//       -> {"ok":true,"type":...} or {"ok":false,"error":...}   (webhooks.constructEvent)
//   {"op":"sign", "body", "secret", "timestamp"}
//       -> {"header":...}                                        (webhooks.generateTestHeaderString)
//   {"op":"api", "port", "key", "calls":[{"do":"create", "params"}|{"do":"retrieve","id"}|
//                                        {"do":"expire","id"}|{"do":"refund","params","idempotencyKey"}|
//                                        {"do":"refunds","payment_intent"}|{"do":"balance"}]}
//       -> {"results":[...]} (each an object or {"error":{type,code,message,statusCode}})
'use strict';

const Stripe = require('stripe');

const API_VERSION = '2024-06-20';

function client(port, key) {
  return new Stripe(key, {
    apiVersion: API_VERSION,
    host: '127.0.0.1',
    port,
    protocol: 'http',
    maxNetworkRetries: 0,
    telemetry: false,
  });
}

async function one(stripe, call) {
  try {
    switch (call.do) {
      case 'create':
        return call.idempotencyKey
          ? await stripe.checkout.sessions.create(call.params, {idempotencyKey: call.idempotencyKey})
          : await stripe.checkout.sessions.create(call.params);
      case 'retrieve':
        return await stripe.checkout.sessions.retrieve(call.id);
      case 'expire':
        return await stripe.checkout.sessions.expire(call.id);
      case 'refund':
        return await stripe.refunds.create(call.params, {idempotencyKey: call.idempotencyKey});
      case 'refunds': {
        const all = [];
        for await (const r of stripe.refunds.list({payment_intent: call.payment_intent, limit: 2})) all.push(r);
        return {data: all};
      }
      case 'balance': {
        const all = [];
        for await (const t of stripe.balanceTransactions.list({limit: 2})) all.push(t);
        return {data: all};
      }
      default:
        throw new Error('unknown call ' + call.do);
    }
  } catch (e) {
    return {error: {type: e.type, code: e.code, message: e.message, statusCode: e.statusCode}};
  }
}

async function main() {
  const cmd = JSON.parse(process.argv[2]);
  const stripe = client(cmd.port || 1, cmd.key || 'sk_test_x');
  if (cmd.op === 'verify') {
    try {
      const ev = stripe.webhooks.constructEvent(cmd.body, cmd.header, cmd.secret, cmd.tolerance);
      return {ok: true, type: ev.type, id: ev.id};
    } catch (e) {
      return {ok: false, error: e.message};
    }
  }
  if (cmd.op === 'sign') {
    return {header: stripe.webhooks.generateTestHeaderString({
      payload: cmd.body, secret: cmd.secret, timestamp: cmd.timestamp})};
  }
  if (cmd.op === 'api') {
    const results = [];
    for (const call of cmd.calls) {
      if (call.idFrom !== undefined) call.id = results[call.idFrom].id;
      if (call.piFrom !== undefined) {
        const pi = results[call.piFrom].payment_intent;
        if (call.params) call.params.payment_intent = pi;
        else call.payment_intent = pi;
      }
      results.push(await one(stripe, call));
    }
    return {results};
  }
  throw new Error('unknown op');
}

main().then((r) => process.stdout.write(JSON.stringify(r) + '\n')).catch((e) => {
  process.stdout.write(JSON.stringify({fatal: e.message}) + '\n');
  process.exit(1);
});
