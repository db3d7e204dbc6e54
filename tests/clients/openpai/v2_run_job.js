// PAIV2: logs in with a Bosun user's password, submits a YAML job of one task role running
// `task` (`createRunningJob`, which polls while the job is WAITING), polls it to its end, lists
// the user's jobs and reads the job's config back.
//
//   node v2_run_job.js <rest_server_uri> <username> <password> <name> <task> <instances>
//
// Prints {login, running, final, listed, config}; exits 0, or 1 if a call failed (with {error}).
'use strict';

const {EXIT, args, finish, limit, poll, described} = require('./common');
const {PAIV2} = require('@microsoft/openpai-js-sdk');

const a = args(['uri', 'username', 'password', 'name', 'task', 'instances']);
const seen = {};
limit(60, () => seen);

const client = new PAIV2.OpenPAIClient({
  rest_server_uri: a.uri,
  username: a.username,
  password: a.password,
  https: false,
});

const config = {
  protocolVersion: 2,
  name: a.name,
  type: 'job',
  prerequisites: [{name: 'image', type: 'dockerimage', uri: 'openpai/standard:python_3.6-pytorch_1.2.0-gpu'}],
  taskRoles: {
    train: {
      instances: Number(a.instances),
      dockerImage: 'image',
      resourcePerInstance: {cpu: 1, memoryMB: 1024, gpu: 0},
      commands: [a.task],
    },
  },
};

(async () => {
  const login = await client.authn.basicLogin();
  seen.login = {user: login.user, admin: login.admin, token: typeof login.token};
  const running = await client.job.createRunningJob(config);
  seen.running = running.jobStatus.state;
  const final = await poll(
    () => client.job.getJob(a.username, a.name),
    (job) => !['WAITING', 'RUNNING'].includes(job.jobStatus.state),
  );
  seen.final = final;
  const listed = await client.job.listJobs({username: a.username});
  seen.listed = listed.map((job) => ({name: job.name, username: job.username, state: job.state}));
  seen.config = await client.job.getJobConfig(a.username, a.name);
  finish(EXIT.ok, seen);
})().catch((e) => finish(EXIT.failed, {...seen, error: described(e)}));
