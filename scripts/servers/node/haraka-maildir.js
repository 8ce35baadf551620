// Haraka plugin for scripts/servers/haraka (copied into the instance's plugins/ as maildir.js).
// RCPT: accepts user@ and postmaster@example.test and a bare postmaster (550 5.1.1 unknown users of
// example.test, 550 5.7.1 every other domain: no relaying). Queue: stores the message once per recipient
// into $HARAKA_MAILDIR/new (written to tmp/ first), line ends turned into LF, the client's Return-Path
// fields removed and ours and Delivered-To put on top, like the other servers here; nothing is ever forwarded.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const LOCAL_DOMAIN = 'example.test';
const LOCAL_USERS = new Set(['user', 'postmaster']);
let sequence = 0;

// address-rfc2821 has had address() as a method and as a property
const plain = (a) => (typeof a.address === 'function' ? a.address() : a.address) || '';

exports.register = function () {
    this.maildir = process.env.HARAKA_MAILDIR;
    if (!this.maildir) throw new Error('HARAKA_MAILDIR is not set');
};

// "post\master" and postmaster are the same local part (RFC 5321 §4.1.2)
const unquote = (local) => local.replace(/^"(.*)"$/s, '$1').replace(/\\(.)/gs, '$1');

// The client's own Return-Path fields (RFC 5321 §4.4: a final delivery MAY remove them before adding its own)
const withoutReturnPath = (message) => {
    const end = message.search(/\n\n|$/);
    const header = message.slice(0, end).replace(/^return-path:[^\n]*\n?(?:[ \t][^\n]*\n?)*/gim, '');
    return header + message.slice(end);
};

exports.hook_rcpt = function (next, connection, params) {
    const user = unquote(params[0].user || '').toLowerCase();
    const host = (params[0].host || '').toLowerCase();
    if (!host) return user === 'postmaster' ? next(OK) : next(DENY, '5.1.3 Bad recipient address syntax');
    if (host !== LOCAL_DOMAIN) return next(DENY, '5.7.1 Relaying denied: not a local domain');
    if (!LOCAL_USERS.has(user)) return next(DENY, '5.1.1 User unknown');
    next(OK);
};

exports.hook_queue = function (next, connection) {
    const txn = connection.transaction;
    txn.message_stream.get_data((data) => {
        const body = withoutReturnPath(data.toString('binary').replace(/\r\n/g, '\n'));
        const sender = plain(txn.mail_from);
        try {
            for (const rcpt of txn.rcpt_to) {
                const name = `${Date.now()}.P${process.pid}Q${sequence++}.${os.hostname()}`;
                const text = `Return-Path: <${sender}>\nDelivered-To: ${plain(rcpt)}\n${body}`;
                fs.writeFileSync(path.join(this.maildir, 'tmp', name), text, 'binary');
                fs.renameSync(path.join(this.maildir, 'tmp', name), path.join(this.maildir, 'new', name));
            }
        } catch (err) {
            connection.logerror(this, `maildir: ${err.message}`);
            return next(DENYSOFT, '4.3.0 Could not store the message');
        }
        next(OK, `Message stored for ${txn.rcpt_to.length} recipient(s)`);
    });
};
