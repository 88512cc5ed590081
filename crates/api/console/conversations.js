// Direct conversations seen on this browser, newest first, per user: the
// API has each conversation's history but no list of them.

export function conversations(username) {
  try {
    return JSON.parse(localStorage.getItem(`tidings.direct.${username}`)) ?? [];
  } catch {
    return [];
  }
}

export function rememberConversation(username, peer) {
  const list = [peer, ...conversations(username).filter((name) => name !== peer)].slice(0, 50);
  localStorage.setItem(`tidings.direct.${username}`, JSON.stringify(list));
}
