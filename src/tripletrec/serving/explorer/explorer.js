// The explorer page of `tripletrec serve`: plain JavaScript over the service's JSON
// endpoints, nothing loaded from elsewhere. Every text from the data reaches the page
// through textContent, never as markup.
"use strict";

(() => {
  const K = 10; // recommendations and similar items shown
  const MATCHES = 8; // type-ahead suggestions
  const WHY = 3; // history items named in "because you liked ..."
  const USER_HISTORY_SHOWN = 50;

  const $ = (id) => document.getElementById(id);
  const names = new Map(); // item id as text -> name, from every answer so far
  const state = {
    history: [], // [{item_id, name}] of the new user, in the order picked
    explain: true, // false once /explain turned out to be missing
    searchSeq: 0, // answers to stale requests are dropped
    recsSeq: 0,
    userSeq: 0,
    active: -1, // highlighted suggestion
    suggestions: [],
  };

  // ------------------------------------------------------------------ helpers
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // An item's name and, after it, smaller, its details.
  function label(name, details) {
    const node = el("span", "label");
    node.append(el("span", "name", name), el("span", "muted small", ` ${details}`));
    return node;
  }

  function button(text, title, onClick) {
    const node = el("button", "small-button", text);
    node.type = "button";
    node.title = title;
    node.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick();
    });
    return node;
  }

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify(body),
    };
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function remember(rows) {
    for (const row of rows || []) {
      if (row && row.name) names.set(String(row.item_id), row.name);
    }
  }

  function nameOf(id, name) {
    return name || names.get(String(id)) || `item ${id}`;
  }

  function setStatus(text, isError) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  function inHistory(id) {
    return state.history.some((row) => String(row.item_id) === String(id));
  }

  const fmt = new Intl.NumberFormat("en");

  // ------------------------------------------------------------------ model
  async function showModel() {
    try {
      const info = await api("/model");
      const parts = [info.estimator, `${fmt.format(info.n_users)} users`,
        `${fmt.format(info.n_items)} items`, info.retrieval];
      $("model-info").textContent = parts.filter(Boolean).join(" · ");
    } catch (error) {
      $("model-info").textContent = `Model information unavailable (${error.message})`;
    }
  }

  // ------------------------------------------------------------------ item search
  // open: show the suggestions once they come (typing), or only keep them for later.
  async function search(open) {
    const query = $("item-search").value;
    const seq = ++state.searchSeq;
    try {
      const url = `/items?query=${encodeURIComponent(query)}&limit=${MATCHES}`;
      const data = await api(url);
      if (seq !== state.searchSeq) return;
      remember(data.items);
      showSuggestions(data.items, data.matches, query, open);
    } catch (error) {
      if (seq !== state.searchSeq) return;
      showSuggestions([], 0, query, false);
      $("search-note").textContent = `Search failed (${error.message})`;
    }
  }

  function showSuggestions(items, matches, query, open) {
    const list = $("item-results");
    list.replaceChildren();
    state.suggestions = items;
    state.active = items.length ? 0 : -1;
    items.forEach((row, i) => {
      const li = el("li", "result");
      li.id = `result-${i}`;
      li.setAttribute("role", "option");
      li.append(label(nameOf(row.item_id, row.name), `#${row.item_id} · ${fmt.format(row.popularity)} users`),
        button("similar", "items similar to this one", () => similar(row)));
      li.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
      li.addEventListener("click", () => pick(row));
      list.append(li);
    });
    highlight();
    if (open) openSuggestions();
    else closeSuggestions();
    const note = query.trim()
      ? `${fmt.format(matches)} item${matches === 1 ? "" : "s"} match “${query.trim()}”`
      : "The most popular items; type to search.";
    $("search-note").textContent = items.length || query.trim() ? note : "";
  }

  function highlight() {
    const items = $("item-results").children;
    for (let i = 0; i < items.length; i++) {
      items[i].classList.toggle("active", i === state.active);
      items[i].setAttribute("aria-selected", String(i === state.active));
    }
    const input = $("item-search");
    if (state.active >= 0) input.setAttribute("aria-activedescendant", `result-${state.active}`);
    else input.removeAttribute("aria-activedescendant");
  }

  function openSuggestions() {
    const open = state.suggestions.length > 0 && document.activeElement === $("item-search");
    $("item-results").hidden = !open;
    $("item-search").setAttribute("aria-expanded", String(open));
  }

  function closeSuggestions() {
    $("item-results").hidden = true;
    $("item-search").setAttribute("aria-expanded", "false");
  }

  function onSearchKey(event) {
    const n = state.suggestions.length;
    if (event.key === "ArrowDown" && n) {
      if ($("item-results").hidden) openSuggestions();
      else state.active = (state.active + 1) % n;
      highlight();
      event.preventDefault();
    } else if (event.key === "ArrowUp" && n) {
      state.active = (state.active - 1 + n) % n;
      highlight();
      event.preventDefault();
    } else if (event.key === "Enter" && state.active >= 0 && !$("item-results").hidden) {
      pick(state.suggestions[state.active]);
      event.preventDefault();
    } else if (event.key === "Escape") {
      closeSuggestions();
    }
  }

  // ------------------------------------------------------------------ the new user's history
  function pick(row) {
    add(row);
    $("item-search").value = "";
    closeSuggestions();
    search(false); // the next pick's suggestions, shown when the box is used again
  }

  function add(row) {
    if (!inHistory(row.item_id)) {
      state.history.push({item_id: row.item_id, name: nameOf(row.item_id, row.name)});
      showHistory();
    }
  }

  function removeItem(id) {
    state.history = state.history.filter((row) => String(row.item_id) !== String(id));
    showHistory();
  }

  function showHistory() {
    const list = $("history");
    list.replaceChildren();
    for (const row of state.history) {
      const li = el("li", "chip");
      li.append(el("span", "name", row.name),
        button("similar", "items similar to this one", () => similar(row)),
        button("×", "remove from the history", () => removeItem(row.item_id)));
      list.append(li);
    }
    const n = state.history.length;
    $("history-empty").hidden = n > 0;
    $("history-count").textContent = n ? `(${n})` : "";
    $("recommend").disabled = n === 0;
    $("clear").disabled = n === 0;
  }

  // ------------------------------------------------------------------ recommendations
  async function recommendHistory() {
    if (!state.history.length) return;
    const seq = ++state.recsSeq;
    const history = state.history.map((row) => row.item_id);
    $("recs-title").textContent = "Recommendations for this history";
    setStatus("Recommending…");
    try {
      const data = await api("/recommend", {history, k: K});
      if (seq !== state.recsSeq) return;
      const unknown = data.unknown_items && data.unknown_items.length
        ? ` (${data.unknown_items.length} history items unknown to the model, ignored)` : "";
      showRecommendations(data.items, seq, {history}, true);
      setStatus(`Top ${data.items.length} for a history of ${history.length} items${unknown}.`);
    } catch (error) {
      if (seq !== state.recsSeq) return;
      $("recommendations").replaceChildren();
      setStatus(`No recommendations: ${error.message}`, true);
    }
  }

  function showRecommendations(items, seq, who, canAdd) {
    remember(items);
    const list = $("recommendations");
    list.replaceChildren();
    for (const row of items) {
      const li = el("li", "rec");
      const head = el("div", "rec-head");
      const actions = el("div", "actions");
      head.append(label(nameOf(row.item_id, row.name),
        `#${row.item_id} · score ${Number(row.score).toPrecision(3)}`), actions);
      if (canAdd) {
        actions.append(button("+ history", "add to the history", () => {
          add(row);
          recommendHistory();
        }));
      }
      actions.append(button("similar", "items similar to this one", () => similar(row)));
      const why = el("p", "why muted small");
      li.append(head, why);
      list.append(li);
      explain(row, who, why, seq);
    }
  }

  // "because you liked ...": an extra; when /explain fails the line just goes away.
  async function explain(row, who, node, seq) {
    if (!state.explain) {
      node.remove();
      return;
    }
    node.textContent = "…";
    try {
      const data = "user" in who
        ? await api(`/explain?user=${encodeURIComponent(who.user)}` +
                    `&item=${encodeURIComponent(row.item_id)}&n=${WHY}`)
        : await api("/explain", {history: who.history, item: row.item_id, n: WHY});
      if (seq !== state.recsSeq) return;
      const parts = reasons(data);
      if (!parts.length) {
        node.remove();
        return;
      }
      const shown = parts.map((part) => Number.isFinite(part.share)
        ? `${part.name} (${Math.round(100 * part.share)}\u00a0%)` : part.name);
      node.textContent = `because you liked ${shown.join(", ")}`;
    } catch (error) {
      // 404 / 405: a service without /explain; stop asking.
      if (error.status === 404 || error.status === 405) state.explain = false;
      node.remove();
    }
  }

  function reasons(data) {
    const items = Array.isArray(data && data.items) ? data.items : [];
    const shares = Array.isArray(data.shares) ? data.shares : [];
    const given = Array.isArray(data.names) ? data.names : [];
    const parts = items.map((item, i) => {
      const row = item !== null && typeof item === "object" ? item : {item_id: item};
      const id = row.item_id !== undefined ? row.item_id : row.item;
      const share = Number(row.share !== undefined ? row.share : shares[i]);
      return {name: nameOf(id, row.name || given[i]), share};
    });
    // Items whose share rounds to 0 % (or below) are no reason anyone would see.
    return parts.filter((part) => !Number.isFinite(part.share) || part.share >= 0.005)
      .slice(0, WHY);
  }

  // ------------------------------------------------------------------ similar items
  async function similar(row) {
    const panel = $("similar-panel");
    const list = $("similar");
    panel.hidden = false;
    $("similar-title").textContent = `Similar to ${nameOf(row.item_id, row.name)}`;
    list.replaceChildren(el("li", "muted", "Loading…"));
    try {
      const data = await api(`/similar?item=${encodeURIComponent(row.item_id)}&k=${K}`);
      remember(data.items);
      list.replaceChildren();
      for (const other of data.items) {
        const li = el("li", "rec");
        const head = el("div", "rec-head");
        const actions = el("div", "actions");
        actions.append(button("+ history", "add to the history", () => add(other)),
          button("similar", "items similar to this one", () => similar(other)));
        head.append(label(nameOf(other.item_id, other.name),
          `#${other.item_id} · similarity ${Number(other.score).toPrecision(3)}`), actions);
        li.append(head);
        list.append(li);
      }
    } catch (error) {
      list.replaceChildren(el("li", "error", `No similar items: ${error.message}`));
    }
    panel.scrollIntoView({block: "nearest"});
  }

  // ------------------------------------------------------------------ a known user
  async function suggestUsers() {
    const seq = ++state.userSeq;
    try {
      const query = $("user-search").value;
      const data = await api(`/users?query=${encodeURIComponent(query)}&limit=${MATCHES}`);
      if (seq !== state.userSeq) return;
      const list = $("user-list");
      list.replaceChildren();
      for (const row of data.users) {
        const option = el("option");
        option.value = String(row.user);
        option.label = `${row.n_items} items`;
        list.append(option);
      }
    } catch (_) {
      // Suggestions are a convenience: a user id typed in full still works.
    }
  }

  async function showUser(event) {
    event.preventDefault();
    const user = $("user-search").value.trim();
    if (!user) return;
    const seq = ++state.recsSeq;
    const id = encodeURIComponent(user);
    $("recs-title").textContent = `Recommendations for user ${user}`;
    setStatus("Recommending…");
    const list = $("user-history");
    try {
      const [history, recs] = await Promise.all([
        api(`/history?user=${id}`), api(`/recommend?user=${id}&k=${K}`),
      ]);
      if (seq !== state.recsSeq) return;
      remember(history.items);
      list.replaceChildren();
      for (const row of history.items.slice(0, USER_HISTORY_SHOWN)) {
        const li = el("li");
        li.append(el("span", "name", nameOf(row.item_id, row.name)),
          button("similar", "items similar to this one", () => similar(row)));
        list.append(li);
      }
      const more = history.n_items - Math.min(history.items.length, USER_HISTORY_SHOWN);
      if (more > 0) list.append(el("li", "muted", `… and ${more} more`));
      $("user-history-title").hidden = false;
      $("user-history-count").textContent = `(${history.n_items}, most popular first)`;
      showRecommendations(recs.items, seq, {user}, false);
      setStatus(`Top ${recs.items.length} for user ${user}, their training items left out.`);
    } catch (error) {
      if (seq !== state.recsSeq) return;
      list.replaceChildren();
      $("user-history-title").hidden = true;
      $("recommendations").replaceChildren();
      setStatus(`No answer for user ${user}: ${error.message}`, true);
    }
  }

  // ------------------------------------------------------------------ wiring
  function debounce(fn, ms) {
    let timer = 0;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function start() {
    const input = $("item-search");
    input.addEventListener("input", debounce(() => search(true), 120));
    input.addEventListener("keydown", onSearchKey);
    input.addEventListener("focus", openSuggestions);
    input.addEventListener("click", openSuggestions);
    input.addEventListener("blur", closeSuggestions);
    $("recommend").addEventListener("click", recommendHistory);
    $("clear").addEventListener("click", () => {
      state.history = [];
      showHistory();
    });
    $("user-search").addEventListener("input", debounce(suggestUsers, 150));
    $("user-form").addEventListener("submit", showUser);
    showHistory();
    showModel();
    search(false);
    suggestUsers();
  }

  start();
})();
