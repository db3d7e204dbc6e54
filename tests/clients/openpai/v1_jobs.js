// The SDK's PAIV1 namespace: logs in (`POST /api/v1/token`, a form), reads the cluster's info,
// submits a job (`submit`: a bracket form), reads it (`get`, `getFrameworkInfo`), lists jobs,
// reads its config (`getConfig`), stops it (`execute(…, 'STOP')`) and removes it (`delete`).
// PAIV1's reads send no token, which Bosun needs: its URL carries the user and token
// (`http://<user>:<token>@host/…`), which `request` sends as Basic auth.
//
//   node v1_jobs.js <rest_server_uri> <username> <password> <name> <task>
//
// Prints each step's answer; exits 0, or 1 if a call failed (with {error}).
'use strict';

const {EXIT, args, finish, limit, poll, described, outcome} = require('./common');
const {PAIV1} = require('@microsoft/openpai-js-sdk');

const a = args(['uri', 'username', 'password', 'name', 'task']);
const seen = {};
limit(60, () => seen);

(async () => {
  const login = new PAIV1.OpenPAIClient({rest_server_uri: a.uri, username: a.username, password: a.password});
  const token = await login.token();
  seen.token = typeof token;
  const url = new URL(a.uri);
  url.username = a.username;
  url.password = token;
  const client = new PAIV1.OpenPAIClient({
    rest_server_uri: url.toString().replace(/\/$/, ''),
    username: a.username,
    password: a.password,
    token,
  });
  seen.clusterInfo = await client.config.clusterInfo();
  seen.submitted = await client.job.submit(a.username, {
    jobName: a.name,
    image: 'aiplatform/pai.build.base',
    codeDir: '$PAI_DEFAULT_FS_URI/code',
    outputDir: '',
    taskRoles: [{name: 'main', taskNumber: 2, cpuNumber: 1, memoryMB: 100, gpuNumber: 0, command: a.task}],
    retryCount: 0,
    jobEnvs: {MODE: 'fast'},
  });
  const running = await poll(
    () => client.job.get(a.username, a.name),
    (job) => job.jobStatus.state === 'RUNNING',
  );
  seen.running = running;
  seen.list = (await client.job.list()).map((job) => ({name: job.name, username: job.username, state: job.state}));
  seen.frameworkInfo = await client.job.getFrameworkInfo(a.username, a.name);
  seen.config = await client.job.getConfig(a.username, a.name);
  seen.execute = await client.job.execute(a.username, a.name, 'STOP');
  const stopped = await poll(
    () => client.job.get(a.username, a.name),
    (job) => job.jobStatus.state === 'STOPPED',
  );
  seen.stopped = stopped.jobStatus.state;
  seen.deleted = await client.job.delete(a.username, a.name);
  seen.afterDelete = await outcome(client.job.get(a.username, a.name));
  finish(EXIT.ok, seen);
})().catch((e) => finish(EXIT.failed, {...seen, error: described(e)}));
