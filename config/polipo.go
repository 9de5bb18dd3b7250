package config

// polipoOnly lists the configuration variables of Polipo 1.1 that stageproxy
// accepts but does not implement: a Polipo config file that sets them still
// loads, with one warning per line, so that operators can point stageproxy at
// the file Polipo used (FIELD-NOTES 7.3). Names are case-sensitive, as in
// Polipo's parseConfigLine.
//
// Reconstructed from the CONFIG_VARIABLE and CONFIG_VARIABLE_SETTABLE calls in
// Polipo's sources (http.c, server.c, object.c, chunk.c, diskcache.c, dns.c,
// socks.c, log.c, forbidden.c, local.c, http_parse.c, main.c, io.c,
// client.c) and polipo.texi. The variables stageproxy implements
// (proxyAddress, proxyPort, allowedClients, tunnelAllowedPorts,
// chunkHighMark, relaxTransparency, logFile, parentProxy,
// parentAuthCredentials, socksParentProxy, socksProxyType, socksUserName,
// socksAuthCredentials) are in the keys table of config.go instead.
var polipoOnly = map[string]bool{
	// http.c: listening, clients, timeouts, headers.
	"disableProxy":      true,
	"proxyOffline":      true,
	"proxyName":         true,
	"displayName":       true,
	"clientTimeout":     true,
	"serverTimeout":     true,
	"serverIdleTimeout": true,
	"authRealm":         true,
	"authCredentials":   true,
	"allowedPorts":      true,
	"expectContinue":    true,
	"bigBufferSize":     true,
	"disableVia":        true,
	"dontTrustVaryETag": true,

	// server.c: upstream connections and pipelining. parentHost and
	// parentPort are the pre-1.0 spelling of parentProxy.
	"parentHost":                  true,
	"parentPort":                  true,
	"serverExpireTime":            true,
	"smallRequestTime":            true,
	"replyUnpipelineTime":         true,
	"replyUnpipelineSize":         true,
	"pipelineAdditionalRequests":  true,
	"maxPipelineTrain":            true,
	"pmmFirstSize":                true,
	"pmmSize":                     true,
	"serverSlots":                 true,
	"serverSlots1":                true,
	"serverMaxSlots":              true,
	"dontCacheRedirects":          true,
	"maxSideBuffering":            true,
	"maxConnectionAge":            true,
	"maxConnectionRequests":       true,
	"alwaysAddNoTransform":        true,
	"allowUnalignedRangeRequests": true,

	// object.c: the object table and freshness heuristics. stageproxy
	// follows RFC 9111 instead of these knobs.
	"idleTime":            true,
	"maxWriteoutWhenIdle": true,
	"maxObjectsWhenIdle":  true,
	"cacheIsShared":       true,
	"mindlesslyCacheVary": true,
	"objectHashTableSize": true,
	"objectHighMark":      true,
	"publicObjectLowMark": true,
	"maxExpiresAge":       true,
	"maxAge":              true,
	"maxAgeFraction":      true,
	"maxNoModifiedAge":    true,
	"dontCacheCookies":    true,

	// chunk.c: chunkHighMark is implemented (as cacheSize); the derived
	// marks are not.
	"chunkLowMark":      true,
	"chunkCriticalMark": true,

	// diskcache.c: stageproxy has no disk cache and no local document tree.
	"diskCacheRoot":                 true,
	"diskCacheDirectoryPermissions": true,
	"diskCacheFilePermissions":      true,
	"diskCacheWriteoutOnClose":      true,
	"diskCacheUnlinkTime":           true,
	"diskCacheTruncateTime":         true,
	"diskCacheTruncateSize":         true,
	"maxDiskEntries":                true,
	"maxDiskCacheEntrySize":         true,
	"preciseExpiry":                 true,
	"localDocumentRoot":             true,

	// dns.c: stageproxy uses Go's resolver.
	"dnsNameServer":       true,
	"dnsMaxTimeout":       true,
	"dnsNegativeTtl":      true,
	"dnsGethostbynameTtl": true,
	"dnsUseGethostbyname": true,
	"dnsQueryIPv6":        true,

	// io.c.
	"proxyOutgoingAddress": true,

	// http_parse.c.
	"censoredHeaders": true,
	"censorReferer":   true,
	"laxHttpParser":   true,

	// local.c: Polipo's /polipo/ pages.
	"disableLocalInterface": true,
	"disableConfiguration":  true,
	"disableIndexing":       true,
	"disableServersList":    true,

	// log.c: logFile is implemented; the rest are not.
	"logLevel":           true,
	"logSyslog":          true,
	"logFacility":        true,
	"logName":            true,
	"logFilePermissions": true,
	"scrubLogs":          true,

	// forbidden.c.
	"forbiddenFile":          true,
	"forbiddenUrl":           true,
	"forbiddenRedirectCode":  true,
	"forbiddenTunnelsFile":   true,
	"uncachableFile":         true,
	"redirector":             true,
	"redirectorRedirectCode": true,

	// main.c.
	"daemonise": true,
	"pidFile":   true,
}
