#!/usr/bin/env node
// Nodemailer's smtp-server library on 127.0.0.1, behaving like a small
// local-only MTA. Run by scripts/servers/smtp-server (see README.md there):
//
//   NODE_PATH=$CACHE/node/node_modules node smtp-server.js PORT MAILDIR
//
// - user@example.test, postmaster@example.test and a bare "postmaster" are
//   accepted; every message is written once per recipient into the Maildir
//   (Return-Path and Delivered-To prepended, CRLF turned into LF, like an
//   MTA's local delivery). Unknown users: 550 5.1.1; other domains: 550 5.7.1.
//   It never relays and never connects anywhere.
// - AUTH is optional (the library requires it by default); PLAIN and LOGIN
//   accept only user@example.test / password, and only after STARTTLS (the
//   library's rule), which uses the self-signed certificate bundled with it.
// - SIZE 10485760 is advertised and enforced (552 after DATA).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { SMTPServer } = require('smtp-server');

const LOCAL_DOMAIN = 'example.test';
const HOSTNAME = 'mx.example.test';
const LOCAL_USERS = new Set(['user', 'postmaster']);
const MAX_SIZE = 10 * 1024 * 1024;
const AUTH_USER = 'user@example.test';
const AUTH_PASSWORD = 'password';

const [portArg, maildir] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !maildir) {
    console.error('usage: smtp-server.js PORT MAILDIR');
    process.exit(2);
}
for (const sub of ['tmp', 'new', 'cur']) {
    fs.mkdirSync(path.join(maildir, sub), { recursive: true });
}

function smtpError(code, message) {
    const err = new Error(message);
    err.responseCode = code;
    return err;
}

// null if the address is deliverable here, else an Error with responseCode.
function rcptVerdict(address) {
    const at = address.lastIndexOf('@');
    if (at < 0) {
        if (address.toLowerCase() === 'postmaster') return null; // RFC 5321 4.5.1
        return smtpError(550, '5.1.3 Unqualified recipient address not accepted');
    }
    const local = address.slice(0, at).toLowerCase();
    const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
    if (domain !== LOCAL_DOMAIN) return smtpError(550, '5.7.1 Relaying denied: not a local domain');
    if (!LOCAL_USERS.has(local)) return smtpError(550, '5.1.1 User unknown');
    return null;
}

let counter = 0;
function deliver(content) {
    const now = process.hrtime.bigint();
    const name = `${Math.floor(Date.now() / 1000)}.M${now % 1000000n}P${process.pid}Q${++counter}.${os.hostname()}`;
    const tmp = path.join(maildir, 'tmp', name);
    fs.writeFileSync(tmp, content, { mode: 0o600 });
    fs.renameSync(tmp, path.join(maildir, 'new', name));
    return name;
}

const server = new SMTPServer({
    name: HOSTNAME,
    banner: 'smtp-server test instance',
    size: MAX_SIZE,
    authOptional: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: true,
    disableReverseLookup: true, // no DNS: the greeting names the client by IP
    onAuth(auth, session, callback) {
        if (auth.username === AUTH_USER && auth.password === AUTH_PASSWORD) {
            callback(null, { user: auth.username });
        } else {
            callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
        }
    },
    onRcptTo(address, session, callback) {
        callback(rcptVerdict(address.address));
    },
    onData(stream, session, callback) {
        const chunks = [];
        stream.on('data', (chunk) => chunks.push(chunk));
        stream.on('error', (err) => callback(err));
        stream.on('end', () => {
            if (stream.sizeExceeded) {
                callback(smtpError(552, '5.3.4 Message exceeds fixed maximum message size'));
                return;
            }
            const body = Buffer.concat(chunks).toString('latin1').replace(/\r\n/g, '\n');
            const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
            try {
                for (const rcpt of session.envelope.rcptTo) {
                    let to = rcpt.address;
                    if (!to.includes('@')) to = `${to}@${LOCAL_DOMAIN}`;
                    const head = `Return-Path: <${sender}>\nDelivered-To: ${to}\n`;
                    deliver(Buffer.from(head + body, 'latin1'));
                }
            } catch (err) {
                console.error('delivery failed:', err);
                callback(smtpError(451, '4.3.0 Local delivery failed'));
                return;
            }
            callback(null, '2.0.0 Ok: delivered');
        });
    },
});

server.on('error', (err) => console.error('server error:', err));
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}, maildir ${maildir}`));

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        console.log(`${sig}: exiting`);
        process.exit(0);
    });
}
