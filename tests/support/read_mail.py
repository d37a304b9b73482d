"""Reads the messages a test SMTP server (aiosmtpd's Mailbox handler) stored in a maildir and
prints them as JSON: headers, both bodies, and each PDF attachment's text as a PDF reader
(pypdf) extracts it. Used by tests/delivery.rs; nothing here trusts the sender's own view."""

import email
import email.policy
import io
import json
import mailbox
import sys

import pypdf

messages = []
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
# Maildir names start with the delivery time: their order is the order of arrival.
for key in sorted(box.keys(), key=lambda k: (int(k.split(".")[0]), int(k.split(".")[1].split("P")[0].lstrip("M") or 0))):
    message = box[key]
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    entry = {
        "messageId": parsed["Message-ID"],
        "from": parsed["From"],
        "to": parsed["To"],
        "replyTo": parsed["Reply-To"],
        "subject": parsed["Subject"],
        "text": None,
        "html": None,
        "attachments": [],
    }
    for part in parsed.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if part.get_filename():
            data = part.get_payload(decode=True)
            text = ""
            if kind == "application/pdf":
                reader = pypdf.PdfReader(io.BytesIO(data))
                text = "\n".join(page.extract_text() for page in reader.pages)
            entry["attachments"].append(
                {"filename": part.get_filename(), "contentType": kind, "size": len(data), "text": text}
            )
        elif kind == "text/plain":
            entry["text"] = part.get_content()
        elif kind == "text/html":
            entry["html"] = part.get_content()
    messages.append(entry)
print(json.dumps(messages))
