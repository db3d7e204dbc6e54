// Lists the jobs through pulsar-rest-api-client-node's `jobs()`, which answers the raw body.
//
//   node jobs.js <url> <token>
//
// Prints {jobs: <the body, parsed>}; exits 0, or 1 if the call failed (with {error}).
'use strict';

const {EXIT, args, finish, limit} = require('./common');
const PulsarApi = require('pulsar-rest-api-client-node');

const {url, token} = args(['url', 'token']);
limit(30, () => ({}));
new PulsarApi({url, authToken: token}).jobs()
  .then((bodies) => finish(EXIT.ok, {jobs: bodies.map((body) => JSON.parse(body))}))
  .catch((e) => finish(EXIT.failed, {error: String(e)}));
