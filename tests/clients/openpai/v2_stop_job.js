// PAIV2: submits a YAML job whose task role runs `task` (one that keeps running), waits until
// it runs, stops it (`updateJobExecutionType(…, 'STOP')`) and waits until it has stopped.
//
//   node v2_stop_job.js <rest_server_uri> <username> <password> <name> <task>
//
// Prints {submitted, running, stop, stopped}; exits 0, or 1 if a call failed (with {error}).
'use strict';

const {EXIT, args, finish, limit, poll, described} = require('./common');
const {PAIV2} = require('@microsoft/openpai-js-sdk');

const a = args(['uri', 'username', 'password', 'name', 'task']);
const seen = {};
limit(60, () => seen);

const client = new PAIV2.OpenPAIClient({
  rest_server_uri: a.uri,
  username: a.username,
  password: a.password,
  https: false,
});

(async () => {
  seen.submitted = await client.job.createJob({
    protocolVersion: 2,
    name: a.name,
    type: 'job',
    taskRoles: {main: {instances: 2, commands: [a.task]}},
  });
  const running = await poll(
    () => client.job.getJob(a.username, a.name),
    (job) => job.jobStatus.state === 'RUNNING',
  );
  seen.running = running.jobStatus.state;
  seen.stop = await client.job.updateJobExecutionType(a.username, a.name, 'STOP');
  const stopped = await poll(
    () => client.job.getJob(a.username, a.name),
    (job) => job.jobStatus.state === 'STOPPED',
  );
  seen.stopped = {
    state: stopped.jobStatus.state,
    executionType: stopped.jobStatus.executionType,
    tasks: stopped.taskRoles.main.taskStatuses.map((t) => t.taskState),
  };
  finish(EXIT.ok, seen);
})().catch((e) => finish(EXIT.failed, {...seen, error: described(e)}));
