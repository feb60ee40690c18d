// Preloaded into kinesis-local (node -r): it has no option for its listen address and binds
// every interface, so this makes every server it starts listen on 127.0.0.1 only.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    const wildcard = args.length < 2 || typeof args[1] === "function" ||
      args[1] === "0.0.0.0" || args[1] === "::";
    if (wildcard) {
      const rest = typeof args[1] === "string" ? args.slice(2) : args.slice(1);
      args = [args[0], "127.0.0.1", ...rest];
    }
  } else if (args[0] && typeof args[0] === "object" && args[0].port !== undefined) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
