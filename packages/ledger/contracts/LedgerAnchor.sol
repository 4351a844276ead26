// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title LedgerAnchor: audit-log checkpoints and consent events of MedShare, anchored on a consortium chain.
/// @notice Stores hashes only: a log's origin hash, tree sizes, RFC 9162 root hashes, checkpoint hashes and
/// consent hashes. Never PHI, never a key.
/// @dev The contract is itself a witness: a new checkpoint of a log is accepted only with an RFC 9162
/// §2.1.4 consistency proof from the previously anchored one (verified with the SHA-256 precompile), so a
/// forked or rewritten log cannot be anchored after its honest history, and anchored sizes only grow.
contract LedgerAnchor {
    struct Anchor {
        bytes32 rootHash;
        bytes32 checkpointHash;
        uint64 treeSize;
        uint64 blockNumber;
        uint64 timestamp;
    }

    uint256 private constant MAX_PROOF = 64;

    address public immutable admin;
    mapping(address => bool) public isAnchorer;
    /// @notice Last anchored tree size of each log (by keccak256 of its origin line).
    mapping(bytes32 => uint64) public latestSize;
    mapping(bytes32 => mapping(uint64 => Anchor)) private anchors;
    /// @notice Whether a consent (by its hash) is currently granted.
    mapping(bytes32 => bool) public consentGranted;

    event AnchorerChanged(address indexed account, bool allowed);
    event CheckpointAnchored(bytes32 indexed originHash, uint64 indexed treeSize, bytes32 rootHash, bytes32 checkpointHash);
    event ConsentRecorded(bytes32 indexed consentHash, bool granted, uint64 ledgerIndex);

    error NotAuthorised();
    error NotNewer(uint64 latest, uint64 given);
    error NotConsistent(uint64 latest, uint64 given);
    error ProofTooLong();
    error ConsentUnchanged(bytes32 consentHash, bool granted);

    modifier onlyAnchorer() {
        if (!isAnchorer[msg.sender]) revert NotAuthorised();
        _;
    }

    constructor() {
        admin = msg.sender;
        isAnchorer[msg.sender] = true;
        emit AnchorerChanged(msg.sender, true);
    }

    /// @notice The consortium admin allows or revokes an account (e.g. one per hospital) to anchor.
    function setAnchorer(address account, bool allowed) external {
        if (msg.sender != admin) revert NotAuthorised();
        isAnchorer[account] = allowed;
        emit AnchorerChanged(account, allowed);
    }

    /// @notice Anchors checkpoint (treeSize, rootHash) of a log, proven consistent with the last anchored one.
    function anchorCheckpoint(
        bytes32 originHash,
        uint64 treeSize,
        bytes32 rootHash,
        bytes32 checkpointHash,
        bytes32[] calldata consistencyProof
    ) external onlyAnchorer {
        if (consistencyProof.length > MAX_PROOF) revert ProofTooLong();
        uint64 latest = latestSize[originHash];
        if (treeSize <= latest) revert NotNewer(latest, treeSize);
        if (latest != 0) {
            bytes32 latestRoot = anchors[originHash][latest].rootHash;
            if (!verifyConsistency(latest, treeSize, latestRoot, rootHash, consistencyProof)) {
                revert NotConsistent(latest, treeSize);
            }
        }
        latestSize[originHash] = treeSize;
        anchors[originHash][treeSize] = Anchor(rootHash, checkpointHash, treeSize, uint64(block.number), uint64(block.timestamp));
        emit CheckpointAnchored(originHash, treeSize, rootHash, checkpointHash);
    }

    /// @notice The anchor of a log at a tree size (all zero when never anchored).
    function anchorOf(bytes32 originHash, uint64 treeSize) external view returns (Anchor memory) {
        return anchors[originHash][treeSize];
    }

    /// @notice Records that a consent (grant of a re-encryption key / policy, by hash) was granted or revoked.
    function recordConsent(bytes32 consentHash, bool granted, uint64 ledgerIndex) external onlyAnchorer {
        if (consentGranted[consentHash] == granted) revert ConsentUnchanged(consentHash, granted);
        consentGranted[consentHash] = granted;
        emit ConsentRecorded(consentHash, granted, ledgerIndex);
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
