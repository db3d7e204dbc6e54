// Runs a job through pulsar-rest-api-client-node as its users did, and says what the client saw.
//
//   node run_job.js <url> <token> <app> <env> <task> [kill]
//
// With `kill`, the job is killed (`killJob`) as soon as the client sees it RUNNING.
// First prints {posted: <id>} once the reply to the submission has arrived (from then on the
// client listens to the job's events: a test holds the task back until then). Then prints {id,
// outcome: "success"|"error", error, status, stdout, emitted: [the Job's events], received: [the
// feed's events about the job, in order], kill: <killJob's answer>}; exits 0 if the job
// succeeded, 1 if it failed, 2 if the script could not tell (time limit, client error).
'use strict';

const path = require('path');
const {EXIT, args, finish, say, limit} = require('./common');

const {url, token, app, env, task} = args(['url', 'token', 'app', 'env', 'task']);
const kill = process.argv[7] === 'kill';

// What the client's own socket receives, recorded beside its handlers: the client takes the
// constructor of `sockjs-client` when it is loaded, so this one is put in its place first.
const client = path.dirname(require.resolve('pulsar-rest-api-client-node'));
const sockjsPath = require.resolve('sockjs-client', {paths: [client]});
const SockJS = require(sockjsPath);
const received = [];
let opened;
const open = new Promise((resolve) => { opened = resolve; });
require.cache[sockjsPath].exports = function RecordingSockJS(...options) {
  const sock = new SockJS(...options);
  sock.addEventListener('open', () => opened());
  sock.addEventListener('message', (message) => received.push(JSON.parse(message.data)));
  return sock;
};

const PulsarApi = require('pulsar-rest-api-client-node');

const api = new PulsarApi({url, authToken: token});
const job = api.createJob(app, env, task);
const emitted = [];
let killAnswer;
const report = (extra) => ({
  id: job.data.id,
  status: job.data.status,
  stdout: job.data.stdout,
  emitted,
  received: received.filter((m) => m.job && m.job.id === job.data.id)
    .map((m) => ({event: m.event, status: m.job.status})),
  kill: killAnswer,
  ...extra,
});
limit(30, report);

job.on('create', () => emitted.push('create'));
job.on('change', () => {
  emitted.push('change');
  if (kill && killAnswer === undefined && job.isRunning()) {
    killAnswer = null;
    api.killJob(job)
      .then((answer) => { killAnswer = answer; })
      .catch((e) => finish(EXIT.stuck, report({kill_error: String(e)})));
  }
});
// The client handles a message before the recorder sees it: the report waits for the recorder.
job.on('success', () => {
  emitted.push('success');
  setImmediate(() => finish(EXIT.ok, report({outcome: 'success'})));
});
job.on('error', (error) => {
  emitted.push('error');
  const code = job.data.id ? EXIT.failed : EXIT.stuck;
  setImmediate(() => finish(code, report({outcome: 'error', error: String(error)})));
});

// Submitted once the feed is open: the server has subscribed this session by then, so the
// job's events cannot go out before the client listens.
// `runJob` has registered the job with the client's feed when its promise resolves.
open.then(() => api.runJob(job))
  .then(() => say({posted: job.data.id}))
  .catch(() => {
    // `runJob` emitted `error` on the job already.
  });
