// Live direct messages on a conversation page; the page works without this script (plain
// forms and reloads). It rides on live.js's socket (frames arrive as "xnode:frame"):
// new messages appear at the bottom, deletions and reactions update in place, "… is
// typing" shows for a few seconds, and the compose, reaction and delete forms are sent
// with fetch instead of reloading the page.
"use strict";

(() => {
  const TYPING_SHOW_MS = 4000;
  const TYPING_SEND_MS = 2000;
  const { parseFrame, csrfToken } = window.xnodeLive;

  // --- the open conversation ---------------------------------------------------------------

  const section = document.querySelector("section[data-conversation]");
  const conversationId = section ? section.dataset.conversation : null;
  const live = section !== null && section.hasAttribute("data-live");
  const list = document.getElementById("message-list");
  const typingLine = document.getElementById("typing");
  const compose = document.getElementById("message-compose");
  const errorLine = document.getElementById("compose-error");
  let unreadSince = null;
  let typingTimer = null;

  // Pushed HTML is rendered without this tab's CSRF token: fill it in from the page.
  const fragment = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html;
    for (const input of template.content.querySelectorAll('input[name="csrf_token"]')) {
      if (!input.value) input.value = csrfToken();
    }
    return template.content;
  };

  const nearBottom = () => !list || list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const scrollDown = () => {
    if (list) list.scrollTop = list.scrollHeight;
  };

  const post = (url, body) =>
    fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    });

  const markRead = (upTo) => {
    const body = new FormData();
    body.append("up_to", upTo);
    post(`/messages/${conversationId}/read`, body).catch(() => {});
  };

  const appendMessage = (id, html) => {
    if (!list || document.getElementById("m" + id)) return false; // already shown
    const stick = nearBottom();
    const empty = list.querySelector(".message-empty");
    if (empty) empty.remove();
    list.append(fragment(html));
    window.xnodeLive.refreshTimes(document.getElementById("m" + id));
    if (stick) scrollDown();
    return true;
  };

  const showTombstone = (id) => {
    const bubble = document.getElementById("m" + id);
    if (!bubble || bubble.classList.contains("tombstone")) return;
    bubble.classList.add("tombstone");
    for (const child of [...bubble.children]) {
      if (!child.classList.contains("message-head")) child.remove();
    }
    const note = document.createElement("p");
    note.className = "muted message-deleted";
    note.textContent = "Message deleted";
    bubble.append(note);
  };

  const replaceReactions = (id, html) => {
    const bar = document.querySelector(`#m${id} [data-reactions-for]`);
    if (bar) bar.replaceWith(fragment(html));
  };

  const showTyping = (name) => {
    if (!typingLine) return;
    typingLine.textContent = name + " is typing…";
    typingLine.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingLine.hidden = true;
      typingLine.textContent = "";
    }, TYPING_SHOW_MS);
  };

  const forgetQuotes = (id) => {
    // A quoted message that is deleted disappears from the replies that quote it too.
    for (const link of document.querySelectorAll(`.message-quote a[href="#m${id}"]`)) {
      const quote = link.closest(".message-quote");
      const note = document.createElement("p");
      note.className = "message-quote muted";
      note.textContent = "Replying to a deleted message";
      quote.replaceWith(note);
    }
  };

  const onFrame = (frame) => {
    if (frame.type === "deleted") forgetQuotes(frame.id);
    if (!live || frame.conversation !== conversationId) return;
    if (frame.type === "message") {
      if (appendMessage(frame.id, frame.html) && !frame.mine) {
        if (typingLine) typingLine.hidden = true;
        if (document.visibilityState === "visible") markRead(frame.id);
        else unreadSince = frame.id;
      }
    } else if (frame.type === "deleted") {
      showTombstone(frame.id);
    } else if (frame.type === "reactions") {
      replaceReactions(frame.id, frame.html);
    } else if (frame.type === "typing") {
      showTyping(frame.name);
    }
  };

  document.addEventListener("xnode:frame", (event) => onFrame(event.detail));

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && unreadSince !== null) {
      markRead(unreadSince);
      unreadSince = null;
    }
  });

  let lastTypingSent = 0;
  const sendTyping = () => {
    const now = Date.now();
    if (now - lastTypingSent < TYPING_SEND_MS) return;
    // The id goes as a string, keeping all its digits.
    if (window.xnodeLive.send({ type: "typing", conversation: conversationId })) {
      lastTypingSent = now;
    }
  };

  // --- forms sent without reloading ------------------------------------------------------------

  const showError = (message) => {
    if (!errorLine) return;
    errorLine.textContent = message;
    errorLine.hidden = !message;
  };

  const errorOf = async (response) => {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (error) {
      // not JSON: fall through to the status line
    }
    return `The message could not be sent (${response.status}). Try again.`;
  };

  const setReply = (id, author, excerpt) => {
    if (!compose) return;
    compose.elements.namedItem("reply_to").value = id || "";
    const line = document.getElementById("replying");
    if (!line) return;
    line.textContent = "";
    line.hidden = !id;
    if (!id) return;
    line.append(`Replying to ${author}: “${excerpt}” `);
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "link-button cancel-reply";
    cancel.textContent = "Cancel reply";
    cancel.addEventListener("click", () => setReply(null));
    line.append(cancel);
  };

  const sendCompose = async () => {
    const button = compose.querySelector('button[type="submit"]');
    button.disabled = true;
    showError("");
    try {
      const response = await post(compose.action, new FormData(compose));
      if (!response.ok) {
        showError(await errorOf(response));
        return;
      }
      const reply = parseFrame(await response.text());
      appendMessage(reply.id, reply.html);
      scrollDown();
      compose.reset();
      setReply(null);
      const source = compose.elements.namedItem("source");
      source.dispatchEvent(new Event("input")); // the character counter follows
      source.focus();
    } catch (error) {
      showError("The message could not be sent: check your connection and try again.");
    } finally {
      button.disabled = false;
    }
  };

  const sendSmallForm = async (form) => {
    const response = await post(form.action, new FormData(form));
    if (!response.ok) {
      showError(await errorOf(response));
      return;
    }
    const reply = parseFrame(await response.text());
    if (form.classList.contains("delete-form")) showTombstone(reply.id);
    else replaceReactions(reply.id, reply.html);
  };

  if (live) {
    // Runs after posts.js's confirmation handler (loaded first), which may cancel a delete.
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (event.defaultPrevented || !(form instanceof HTMLFormElement)) return;
      if (form === compose) {
        event.preventDefault();
        sendCompose();
      } else if (list && list.contains(form) && form.matches(".react-form, .delete-form")) {
        event.preventDefault();
        sendSmallForm(form).catch(() => showError("That did not work: try again."));
      }
    });

    if (list) {
      list.addEventListener("click", (event) => {
        const link = event.target instanceof Element ? event.target.closest("a[data-reply-to]") : null;
        if (!link) return;
        event.preventDefault();
        const bubble = link.closest("article.message");
        const author = bubble.querySelector(".message-author").textContent.trim();
        const content = bubble.querySelector(".message-content");
        let excerpt = content ? content.textContent.trim().replace(/\s+/g, " ") : "";
        if (excerpt.length > 80) excerpt = excerpt.slice(0, 79) + "…";
        setReply(link.dataset.replyTo, author, excerpt);
        compose.elements.namedItem("source").focus();
      });
    }

    if (compose) {
      const source = compose.elements.namedItem("source");
      source.addEventListener("input", sendTyping);
      // Enter sends, Shift+Enter starts a new line (not while an input method composes).
      source.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          compose.requestSubmit();
        }
      });
    }
    if (!location.hash) scrollDown();
  }
})();
