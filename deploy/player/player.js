// The player page: an MP4 in a plain <video> and an HLS stream through
// hls.js (or the browser's own HLS support), both fetched from a cdn-node
// with the token in the `jwt` query parameter.
//
// Query string: node (the node's URL), token (a JWT), mp4 and hls (paths on
// the node; each optional).
//
// window.playerState holds what happened, for people and for tests:
//   playerState.mp4 / playerState.hls (null when the path was not given):
//     url          the URL loaded, with the token shown as REDACTED
//     engine       "video" (MP4), "hls.js" or "native" (HLS)
//     currentTime, duration, paused, ended, seeking, readyState
//     playing      true once playback has started
//     seeks        how many seeks have completed
//     error        null, or a message once the player gave up
//     fatal        true once the player gave up
//     status       the HTTP status of the node's answer behind the error,
//                  when the browser let the page read it (else null)
//     errors       every error reported, fatal or not
//     level        HLS: the rendition playing (index in levels)
//     levels       HLS: the renditions of the master playlist
//   playerState.log: the lines of the Events list.
(function () {
  "use strict";

  const params = new URLSearchParams(window.location.search);
  const node = (params.get("node") || "").replace(/\/+$/, "");
  const token = params.get("token") || "";
  const paths = { mp4: params.get("mp4") || "", hls: params.get("hls") || "" };

  const state = { node: node, token: token !== "", mp4: null, hls: null, log: [] };
  window.playerState = state;

  const logList = document.getElementById("log");

  function log(who, message, isError) {
    const time = new Date().toISOString().slice(11, 23);
    const line = time + " " + who + ": " + message;
    state.log.push(line);
    const item = document.createElement("li");
    item.textContent = line;
    if (isError) {
      item.className = "error";
    }
    logList.appendChild(item);
  }

  // The URL of `path` on the node, with the token as `jwt` when there is one.
  function nodeUrl(path) {
    const sep = path.indexOf("?") >= 0 ? "&" : "?";
    const rel = path.charAt(0) === "/" ? path : "/" + path;
    return node + rel + (token ? sep + "jwt=" + encodeURIComponent(token) : "");
  }

  // What the page shows of a URL: the token is never displayed.
  function shown(url) {
    return url.replace(/([?&]jwt=)[^&]*/, "$1REDACTED");
  }

  // The token's expiry, read from its payload (not verified: the node does).
  function tokenSummary() {
    if (!token) {
      return "no token";
    }
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      if (typeof claims.exp !== "number") {
        return "a token without exp";
      }
      const left = Math.round(claims.exp - Date.now() / 1000);
      return left > 0
        ? "a token valid for " + Math.ceil(left / 60) + " more min"
        : "a token that expired " + Math.ceil(-left / 60) + " min ago";
    } catch (e) {
      return "a token that is not a JWT";
    }
  }

  function newPlayer(url, engine) {
    return {
      url: shown(url),
      engine: engine,
      currentTime: 0,
      duration: null,
      paused: true,
      ended: false,
      seeking: false,
      readyState: 0,
      playing: false,
      seeks: 0,
      error: null,
      fatal: false,
      status: null,
      errors: [],
      level: null,
      levels: [],
    };
  }

  function setStatus(section, text, isError) {
    const p = section.querySelector(".status");
    p.textContent = text;
    p.className = isError ? "status error" : "status";
  }

  // Keeps `player` in step with the <video> element and shows its state.
  function watch(kind, video, player, section) {
    function update() {
      player.currentTime = video.currentTime;
      player.duration = Number.isFinite(video.duration) ? video.duration : null;
      player.paused = video.paused;
      player.ended = video.ended;
      player.seeking = video.seeking;
      player.readyState = video.readyState;
      if (!player.fatal) {
        const total = player.duration === null ? "?" : player.duration.toFixed(1);
        const where = video.currentTime.toFixed(1) + " s of " + total + " s";
        const what = video.ended ? "ended" : video.paused ? "paused" : "playing";
        setStatus(section, what + ", " + where);
      }
    }
    ["timeupdate", "durationchange", "pause", "seeking", "loadeddata"].forEach(function (name) {
      video.addEventListener(name, update);
    });
    video.addEventListener("playing", function () {
      player.playing = true;
      update();
      log(kind, "playing at " + video.currentTime.toFixed(2) + " s");
    });
    video.addEventListener("seeked", function () {
      player.seeks += 1;
      update();
      log(kind, "seeked to " + video.currentTime.toFixed(2) + " s");
    });
    video.addEventListener("ended", function () {
      update();
      log(kind, "ended");
    });
    video.addEventListener("loadedmetadata", function () {
      update();
      log(kind, "metadata: " + video.videoWidth + "x" + video.videoHeight +
        ", " + video.duration.toFixed(2) + " s");
    });
  }

  function fail(kind, player, section, message, status) {
    player.fatal = true;
    player.error = message;
    if (status) {
      player.status = status;
    }
    setStatus(section, "error: " + message, true);
    log(kind, "error: " + message, true);
  }

  function start(video, kind) {
    const started = video.play();
    if (started && typeof started.catch === "function") {
      started.catch(function (e) {
        log(kind, "play() refused: " + e.name + ": " + e.message, true);
      });
    }
  }

  // A media element tells the page that loading failed, never the HTTP
  // status. A HEAD request asks the node; the page can read the answer when
  // the node's CORS settings allow this page's origin.
  function probe(url) {
    return fetch(url, { method: "HEAD", cache: "no-store", credentials: "omit" })
      .then(function (r) { return r.status; })
      .catch(function () { return null; });
  }

  const MEDIA_ERRORS = {
    1: "MEDIA_ERR_ABORTED",
    2: "MEDIA_ERR_NETWORK",
    3: "MEDIA_ERR_DECODE",
    4: "MEDIA_ERR_SRC_NOT_SUPPORTED",
  };

  function mediaError(e) {
    if (!e) {
      return "media error";
    }
    const name = MEDIA_ERRORS[e.code] || "MediaError " + e.code;
    return name + (e.message ? " (" + e.message + ")" : "");
  }

  function probeSays(status) {
    if (status) {
      return "; the node answers " + status;
    }
    return "; the node did not answer, or its answer is hidden from this page" +
      " (is " + window.location.origin + " in the node's cors.allowed_origins?)";
  }

  function startMp4() {
    const section = document.getElementById("mp4");
    const video = document.getElementById("mp4-video");
    const url = nodeUrl(paths.mp4);
    const player = newPlayer(url, "video");
    state.mp4 = player;
    section.hidden = false;
    section.querySelector(".url").textContent = shown(url);
    watch("mp4", video, player, section);
    video.addEventListener("error", function () {
      const message = mediaError(video.error);
      player.errors.push({ fatal: true, detail: message, status: null });
      probe(url).then(function (status) {
        fail("mp4", player, section, message + probeSays(status), status);
      });
    });
    log("mp4", "loading " + shown(url));
    video.src = url;
    start(video, "mp4");
  }

  function startHls() {
    const section = document.getElementById("hls");
    const video = document.getElementById("hls-video");
    const url = nodeUrl(paths.hls);
    section.hidden = false;
    section.querySelector(".url").textContent = shown(url);

    if (window.Hls && window.Hls.isSupported()) {
      const player = newPlayer(url, "hls.js");
      state.hls = player;
      section.querySelector(".engine").textContent = "hls.js " + window.Hls.version;
      watch("hls", video, player, section);
      const hls = new window.Hls();
      let mediaRecoveries = 0;
      hls.on(window.Hls.Events.MANIFEST_PARSED, function (event, data) {
        player.levels = data.levels.map(function (l) {
          return { width: l.width, height: l.height, bitrate: l.bitrate };
        });
        log("hls", "master playlist: " + player.levels.map(function (l) {
          return l.height + "p";
        }).join(", "));
        start(video, "hls");
      });
      hls.on(window.Hls.Events.LEVEL_SWITCHED, function (event, data) {
        player.level = data.level;
        const l = player.levels[data.level];
        log("hls", "rendition " + (l ? l.height + "p" : data.level));
      });
      hls.on(window.Hls.Events.ERROR, function (event, data) {
        const status = data.response && data.response.code ? data.response.code : null;
        let detail = data.type + "/" + data.details;
        if (status) {
          detail += " (HTTP " + status + ")";
        } else if (data.response && data.response.code === 0) {
          // The browser hid the answer: no CORS headers for this origin.
          detail += " (no answer this page may read: is its origin " + window.location.origin +
            " in the node's cors.allowed_origins?)";
        }
        player.errors.push({ fatal: data.fatal, detail: detail, status: status });
        if (!data.fatal) {
          log("hls", "recovered from " + detail);
          return;
        }
        if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 1) {
          mediaRecoveries += 1;
          log("hls", "media error " + detail + ": recovering", true);
          hls.recoverMediaError();
          return;
        }
        hls.destroy();
        fail("hls", player, section, detail, status);
      });
      log("hls", "loading " + shown(url) + " with hls.js " + window.Hls.version);
      hls.loadSource(url);
      hls.attachMedia(video);
      return;
    }

    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      const player = newPlayer(url, "native");
      state.hls = player;
      section.querySelector(".engine").textContent = "the browser's own HLS";
      watch("hls", video, player, section);
      video.addEventListener("error", function () {
        const message = mediaError(video.error);
        player.errors.push({ fatal: true, detail: message, status: null });
        probe(url).then(function (status) {
          fail("hls", player, section, message + probeSays(status), status);
        });
      });
      log("hls", "loading " + shown(url) + " with the browser's own HLS");
      video.src = url;
      start(video, "hls");
      return;
    }

    const player = newPlayer(url, null);
    state.hls = player;
    fail("hls", player, section, "this browser plays HLS neither with hls.js (no Media Source Extensions) nor natively", null);
  }

  const summary = document.getElementById("summary");
  if (!node || (!paths.mp4 && !paths.hls)) {
    summary.textContent = "Nothing to play: the query string names no node or no video.";
    document.getElementById("usage").hidden = false;
    log("page", "nothing to play: node=" + (node || "(none)") + ", mp4 and hls missing or empty", true);
    return;
  }
  summary.textContent = "From " + node + " with " + tokenSummary() + ".";
  if (paths.mp4) {
    startMp4();
  }
  if (paths.hls) {
    startHls();
  }
})();
