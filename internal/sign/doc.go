// Package sign is plinth's only importer of cosign: it verifies publishers'
// signatures on base images, and signs approved digests and attaches
// plinth's attestations next to them, in cosign's formats, so that the
// cosign CLI and admission tools read what plinth writes. Controllers see
// plain Go types only.
package sign
