// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title LedgerAnchor: audit-log checkpoints and consent events of MedShare, anchored on a consortium chain.
/// @notice Stores hashes only: a log's origin hash, tree sizes, RFC 9162 root hashes, checkpoint hashes, entry leaf
/// hashes and consent hashes. Never PHI, never a key.
/// @dev Who may write what (docs/ledger.md §Anchoring):
/// - The consortium admin (rotatable, two-step) registers each log: its origin, the one account that anchors it
///   (rotatable) and its witnesses' chain accounts with a quorum. An unregistered origin cannot be anchored, so no
///   one can squat a log's first anchor.
/// - A checkpoint is accepted only with cosignatures of the log's witness quorum (ECDSA over the checkpoint hash,
///   which the contract computes itself from origin, size and root), and with an RFC 9162 §2.1.4 consistency proof
///   from the previously anchored one. Witnesses cosign only checkpoints signed by the log and consistent with what
///   they saw, so the anchorer alone cannot push a made-up tree (e.g. one of size 2^63 that freezes the log).
/// - A consent record names the log entry it comes from (origin, index) and proves that entry's leaf hash is in an
///   anchored tree; per log and consent, records only move forward in the log.
contract LedgerAnchor {
    struct Anchor {
        bytes32 rootHash;
        bytes32 checkpointHash;
        uint64 treeSize;
        uint64 blockNumber;
        uint64 timestamp;
    }

    struct Log {
        address anchorer;
        uint64 latestSize;
        uint8 quorum;
        address[] witnesses;
    }

    struct ConsentRecord {
        bytes32 consentHash;
        bytes32 leafHash;
        bool granted;
        uint64 blockNumber;
    }

    struct ConsentState {
        bool granted;
        bool recorded;
        uint64 lastIndex;
    }

    uint256 private constant MAX_PROOF = 64;
    uint256 private constant MAX_WITNESSES = 32;
    /// @dev secp256k1 order / 2: a signature with a larger s is the malleated twin of a valid one (EIP-2).
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    bytes private constant BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    /// @notice Prefix of what a witness signs: keccak256(COSIGNATURE_PREFIX ‖ checkpointHash).
    bytes public constant COSIGNATURE_PREFIX = "medshare checkpoint cosignature v1\n";

    address public admin;
    address public pendingAdmin;
    mapping(bytes32 => Log) private logs;
    mapping(bytes32 => mapping(uint64 => Anchor)) private anchors;
    mapping(bytes32 => mapping(uint64 => ConsentRecord)) private consentRecords;
    mapping(bytes32 => mapping(bytes32 => ConsentState)) private consents;

    event AdminProposed(address indexed next);
    event AdminChanged(address indexed admin);
    event LogConfigured(bytes32 indexed originHash, string origin, address anchorer, address[] witnesses, uint8 quorum);
    event CheckpointAnchored(bytes32 indexed originHash, uint64 indexed treeSize, bytes32 rootHash, bytes32 checkpointHash);
    event ConsentRecorded(bytes32 indexed originHash, uint64 indexed entryIndex, bytes32 consentHash, bool granted);

    error NotAuthorised();
    error UnknownLog(bytes32 originHash);
    error BadConfiguration();
    error NotNewer(uint64 latest, uint64 given);
    error NotConsistent(uint64 latest, uint64 given);
    error ProofTooLong();
    error QuorumNotMet(uint256 valid, uint256 required);
    error NotAnchored(uint64 treeSize);
    error NotIncluded(uint64 entryIndex);
    error AlreadyRecorded(uint64 entryIndex);
    error StaleConsent(uint64 lastIndex, uint64 given);
    error ConsentUnchanged(bytes32 consentHash, bool granted);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAuthorised();
        _;
    }

    constructor() {
        admin = msg.sender;
        emit AdminChanged(msg.sender);
    }

    /// @notice First step of rotating the admin: proposes `next`, who must accept (a typo cannot lose the contract).
    function transferAdmin(address next) external onlyAdmin {
        pendingAdmin = next;
        emit AdminProposed(next);
    }

    /// @notice Second step: the proposed admin takes over; the old one loses every right.
    function acceptAdmin() external {
        if (msg.sender != pendingAdmin || msg.sender == address(0)) revert NotAuthorised();
        admin = msg.sender;
        pendingAdmin = address(0);
        emit AdminChanged(msg.sender);
    }

    /// @notice Registers a log or changes its anchorer and witnesses. Witness addresses strictly ascending (distinct),
    /// 1 ≤ quorum ≤ their number ≤ 32. Anchored history is kept.
    function configureLog(string calldata origin, address anchorer, address[] calldata witnesses, uint8 quorum) external onlyAdmin {
        if (anchorer == address(0) || quorum == 0 || quorum > witnesses.length || witnesses.length > MAX_WITNESSES) {
            revert BadConfiguration();
        }
        for (uint256 i = 0; i < witnesses.length; i++) {
            if (witnesses[i] == address(0) || (i > 0 && witnesses[i] <= witnesses[i - 1])) revert BadConfiguration();
        }
        bytes32 id = keccak256(bytes(origin));
        Log storage log = logs[id];
        log.anchorer = anchorer;
        log.quorum = quorum;
        log.witnesses = witnesses;
        emit LogConfigured(id, origin, anchorer, witnesses, quorum);
    }

    /// @notice A log's anchorer, quorum, witnesses and last anchored size (anchorer zero when unregistered).
    function logOf(bytes32 originHash) external view returns (address anchorer, uint8 quorum, address[] memory witnesses, uint64 latestSize) {
        Log storage log = logs[originHash];
        return (log.anchorer, log.quorum, log.witnesses, log.latestSize);
    }

    /// @notice Last anchored tree size of a log (by keccak256 of its origin line).
    function latestSize(bytes32 originHash) external view returns (uint64) {
        return logs[originHash].latestSize;
    }

    /// @notice Anchors checkpoint (treeSize, rootHash) of `origin`: by its anchorer, with its witness quorum's
    /// cosignatures (65-byte r ‖ s ‖ v each), proven consistent with the last anchored checkpoint.
    function anchorCheckpoint(
        string calldata origin,
        uint64 treeSize,
        bytes32 rootHash,
        bytes32[] calldata consistencyProof,
        bytes[] calldata cosignatures
    ) external {
        bytes32 id = keccak256(bytes(origin));
        Log storage log = logs[id];
        if (log.anchorer == address(0)) revert UnknownLog(id);
        if (msg.sender != log.anchorer) revert NotAuthorised();
        if (consistencyProof.length > MAX_PROOF) revert ProofTooLong();
        uint64 latest = log.latestSize;
        if (treeSize <= latest) revert NotNewer(latest, treeSize);
        bytes32 cpHash = checkpointHashOf(origin, treeSize, rootHash);
        uint256 valid = countCosigners(log.witnesses, cpHash, cosignatures);
        if (valid < log.quorum) revert QuorumNotMet(valid, log.quorum);
        bool consistent = latest == 0
            ? consistencyProof.length == 0
            : verifyConsistency(latest, treeSize, anchors[id][latest].rootHash, rootHash, consistencyProof);
        if (!consistent) revert NotConsistent(latest, treeSize);
        log.latestSize = treeSize;
        anchors[id][treeSize] = Anchor(rootHash, cpHash, treeSize, uint64(block.number), uint64(block.timestamp));
        emit CheckpointAnchored(id, treeSize, rootHash, cpHash);
    }

    /// @notice The anchor of a log at a tree size (all zero when never anchored).
    function anchorOf(bytes32 originHash, uint64 treeSize) external view returns (Anchor memory) {
        return anchors[originHash][treeSize];
    }

    /// @notice Records the consent grant or revocation logged as entry `entryIndex` of `originHash`'s log, whose leaf
    /// hash is proven included in the anchored tree of `treeSize`. By the log's anchorer; per consent, each record
    /// must come later in the log than the previous one and change its state.
    function recordConsent(
        bytes32 originHash,
        uint64 entryIndex,
        bytes32 leafHash,
        uint64 treeSize,
        bytes32[] calldata inclusionProof,
        bytes32 consentHash,
        bool granted
    ) external {
        Log storage log = logs[originHash];
        if (log.anchorer == address(0)) revert UnknownLog(originHash);
        if (msg.sender != log.anchorer) revert NotAuthorised();
        Anchor storage anchor = anchors[originHash][treeSize];
        if (anchor.blockNumber == 0) revert NotAnchored(treeSize);
        if (!verifyInclusion(entryIndex, treeSize, leafHash, inclusionProof, anchor.rootHash)) revert NotIncluded(entryIndex);
        if (consentRecords[originHash][entryIndex].blockNumber != 0) revert AlreadyRecorded(entryIndex);
        ConsentState storage state = consents[originHash][consentHash];
        if (state.recorded && entryIndex <= state.lastIndex) revert StaleConsent(state.lastIndex, entryIndex);
        if (state.granted == granted) revert ConsentUnchanged(consentHash, granted);
        state.granted = granted;
        state.recorded = true;
        state.lastIndex = entryIndex;
        consentRecords[originHash][entryIndex] = ConsentRecord(consentHash, leafHash, granted, uint64(block.number));
        emit ConsentRecorded(originHash, entryIndex, consentHash, granted);
    }

    /// @notice Whether a consent is currently granted according to a log's records.
    function consentGranted(bytes32 originHash, bytes32 consentHash) external view returns (bool) {
        return consents[originHash][consentHash].granted;
    }

    /// @notice The consent record made from entry `entryIndex` of a log (blockNumber zero when none).
    function consentRecordOf(bytes32 originHash, uint64 entryIndex) external view returns (ConsentRecord memory) {
        return consentRecords[originHash][entryIndex];
    }

    /// @notice SHA-256 of the c2sp.org/tlog-checkpoint body "<origin>\n<size>\n<base64 root>\n", as signed notes sign it.
    function checkpointHashOf(string calldata origin, uint64 treeSize, bytes32 rootHash) public pure returns (bytes32) {
        return sha256(abi.encodePacked(origin, "\n", decimal(treeSize), "\n", base64(rootHash), "\n"));
    }

    /// @notice How many distinct `witnesses` signed `cpHash` among `cosignatures` (others are ignored).
    function countCosigners(address[] storage witnesses, bytes32 cpHash, bytes[] calldata cosignatures) private view returns (uint256 valid) {
        if (cosignatures.length > MAX_WITNESSES) revert BadConfiguration();
        bytes32 digest = keccak256(abi.encodePacked(COSIGNATURE_PREFIX, cpHash));
        uint256 seen = 0;
        for (uint256 i = 0; i < cosignatures.length; i++) {
            address signer = recover(digest, cosignatures[i]);
            if (signer == address(0)) continue;
            for (uint256 w = 0; w < witnesses.length; w++) {
                if (witnesses[w] == signer && (seen & (1 << w)) == 0) {
                    seen |= 1 << w;
                    valid += 1;
                    break;
                }
            }
        }
    }

    /// @dev ecrecover of a 65-byte r ‖ s ‖ v signature; zero for a malformed or high-s one.
    function recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function decimal(uint64 value) private pure returns (bytes memory) {
        if (value == 0) return "0";
        uint256 digits = 0;
        for (uint64 v = value; v != 0; v /= 10) digits++;
        bytes memory out = new bytes(digits);
        for (uint64 v = value; v != 0; v /= 10) out[--digits] = bytes1(uint8(48 + (v % 10)));
        return out;
    }

    /// @dev Standard base64 (RFC 4648 §4, padded) of 32 bytes: 44 characters.
    function base64(bytes32 value) private pure returns (bytes memory) {
        bytes memory out = new bytes(44);
        uint256 o = 0;
        for (uint256 i = 0; i < 30; i += 3) {
            uint256 n = (uint256(uint8(value[i])) << 16) | (uint256(uint8(value[i + 1])) << 8) | uint256(uint8(value[i + 2]));
            out[o++] = BASE64[(n >> 18) & 63];
            out[o++] = BASE64[(n >> 12) & 63];
            out[o++] = BASE64[(n >> 6) & 63];
            out[o++] = BASE64[n & 63];
        }
        uint256 last = (uint256(uint8(value[30])) << 16) | (uint256(uint8(value[31])) << 8);
        out[o++] = BASE64[(last >> 18) & 63];
        out[o++] = BASE64[(last >> 12) & 63];
        out[o++] = BASE64[(last >> 6) & 63];
        out[o] = "=";
        return out;
    }

    /// @notice RFC 9162 §2.1.3.2: is `leafHash` entry `index` of the tree (size, root)?
    function verifyInclusion(uint64 index, uint64 size, bytes32 leafHash, bytes32[] calldata proof, bytes32 root) public pure returns (bool) {
        if (index >= size || proof.length > MAX_PROOF) return false;
        uint64 fn = index;
        uint64 sn = size - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; i++) {
            if (sn == 0) return false;
            if ((fn & 1) == 1 || fn == sn) {
                r = sha256(abi.encodePacked(bytes1(0x01), proof[i], r));
                while ((fn & 1) == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                r = sha256(abi.encodePacked(bytes1(0x01), r, proof[i]));
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    /// @notice RFC 9162 §2.1.4.2: is the tree (first, firstRoot) a prefix of (second, secondRoot)?
    function verifyConsistency(
        uint64 first,
        uint64 second,
        bytes32 firstRoot,
        bytes32 secondRoot,
        bytes32[] calldata proof
    ) public pure returns (bool) {
        if (first > second || proof.length > MAX_PROOF) return false;
        if (first == second) return proof.length == 0 && firstRoot == secondRoot;
        if (first == 0 || proof.length == 0) return false;
        uint64 fn = first - 1;
        uint64 sn = second - 1;
        while ((fn & 1) == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        uint256 next = 0;
        bytes32 fr;
        bytes32 sr;
        if ((first & (first - 1)) == 0) {
            fr = firstRoot;
            sr = firstRoot;
        } else {
            fr = proof[0];
            sr = proof[0];
            next = 1;
        }
        for (; next < proof.length; next++) {
            bytes32 c = proof[next];
            if (sn == 0) return false;
            if ((fn & 1) == 1 || fn == sn) {
                fr = sha256(abi.encodePacked(bytes1(0x01), c, fr));
                sr = sha256(abi.encodePacked(bytes1(0x01), c, sr));
                while ((fn & 1) == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = sha256(abi.encodePacked(bytes1(0x01), sr, c));
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == firstRoot && sr == secondRoot;
    }
}
